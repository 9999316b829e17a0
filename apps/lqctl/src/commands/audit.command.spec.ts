import { describe, expect, it } from '@jest/globals';
import { UsageError } from '../errors.js';
import { auditLsCommand, auditQuery, parseLimit, shellQuote } from './audit.command.js';
import { command, testContext, testServer } from './test-context.js';

describe('audit ls', () => {
  const now = new Date('2026-11-03T12:00:00Z');

  it('should turn the filters into the API’s query, --since 1h into an ISO from', () => {
    expect(
      auditQuery(
        command([
          'audit',
          'ls',
          '--vm',
          'vm-1',
          '--outcome',
          'error',
          '--since',
          '1h',
          '--actor',
          'alice',
        ]),
        now,
      ),
    ).toEqual({
      actor: 'alice',
      vm_id: 'vm-1',
      project: undefined,
      operation: undefined,
      kind: undefined,
      outcome: 'error',
      from: '2026-11-03T11:00:00.000Z',
      to: undefined,
    });
  });

  it('should refuse --since after --until and a bad limit', () => {
    expect(() =>
      auditQuery(command(['audit', 'ls', '--since', '1h', '--until', '2h']), now),
    ).toThrow(/--since must not be after --until/);
    expect(parseLimit(undefined, 50)).toBe(50);
    expect(parseLimit('5000', 50)).toBe(5000);
    expect(() => parseLimit('0', 50)).toThrow(UsageError);
    expect(() => parseLimit('many', 50)).toThrow(UsageError);
  });

  it('should quote argv as a shell would need it', () => {
    expect(shellQuote(['sh', '-c', "echo it's $HOME"])).toBe(`sh -c 'echo it'\\''s $HOME'`);
    expect(shellQuote(['ls', '-la', '/tmp'])).toBe('ls -la /tmp');
  });
});

describe('audit ls paging', () => {
  it('should follow next_cursor up to --limit and shrink pages to the server’s maximum', async () => {
    const asked: string[] = [];
    const { server, url } = await testServer((req, res) => {
      const q = new URL(req.url!, 'http://x').searchParams;
      asked.push(`cursor=${q.get('cursor') ?? ''} limit=${q.get('limit')}`);
      const limit = Number(q.get('limit'));
      if (limit > 400) {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            code: 'INVALID_QUERY',
            message: 'limit must be at most 400 (LQ_AUDIT_PAGE_MAX)',
          }),
        );
        return;
      }
      // 1000 rows, seq 1000 down to 1.
      const before = Number(q.get('cursor') ?? 1001);
      const rows = Array.from({ length: Math.min(limit, before - 1) }, (_, i) => ({
        seq: before - 1 - i,
        at: '2026-11-03T12:00:00.000Z',
        kind: 'intent',
        actor: 'admin',
        vm_id: 'vm-1',
        operation: 'execute',
        status: null,
        exit_code: null,
        error: null,
      }));
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          events: rows,
          next_cursor: rows.length === limit ? String(rows.at(-1)!.seq) : null,
        }),
      );
    });
    try {
      const { ctx, out, err } = testContext(url);
      ctx.json = true;
      expect(await auditLsCommand(ctx, command(['audit', 'ls', '--limit', '900']))).toBe(0);
      const rows = JSON.parse(out()) as Array<{ seq: number }>;
      expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: 900 }, (_, i) => 1000 - i));
      expect(asked).toEqual([
        'cursor= limit=900',
        'cursor= limit=400',
        'cursor=601 limit=400',
        'cursor=201 limit=100',
      ]);
      expect(err()).toBe('');
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
