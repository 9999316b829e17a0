// Outcome rows while PostgreSQL is down (issue 18 item 8): a PostgreSQL cluster of the test's
// own is stopped under the ordered writer; the outcomes of operations already running go to the
// local spool (fsync'd) and count as kept; the writer's process then "crashes" (it is dropped
// without closing) and a new one, on the same spool directory, replays them in order once the
// database is back. Nothing lost, nothing twice, the chain intact. Real PostgreSQL.
import { createHash, randomUUID } from 'node:crypto';
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { DataSource } from 'typeorm';
import { AuditRepository, AuditSpool, AuditWriter, type AuditRecord } from '@lq/audit';
import { createDataSource, runMigrationsLocked } from '../../src/database/data-source.js';
import { startPgCluster, type PgCluster } from '../../../../test/support/pg-cluster.js';

const quiet = { warn: () => undefined, error: () => undefined };
const options = { maxBatch: 50, writeTimeoutMs: 2000, maxPending: 10_000, retryDelayMs: 100 };

const digest = (text: string) => ({
  sha256: createHash('sha256').update(text).digest('hex'),
  bytes: Buffer.byteLength(text),
});

const row = (kind: 'intent' | 'outcome', requestId: string, i: number): AuditRecord => ({
  kind,
  requestId,
  actor: 'alice',
  authMethod: 'jwt',
  sourceIp: '127.0.0.1',
  vmId: 'vm-1',
  nodeId: 'node-1',
  projectId: 'demo',
  operation: 'execute',
  params: { i },
  ...(kind === 'outcome'
    ? {
        status: 'ok',
        exitCode: 0,
        stdout: digest(`out ${i}\n`),
        stderr: digest(''),
        output: {
          stdout: Buffer.from(`out ${i}\n`),
          stderr: new Uint8Array(),
          stdoutTruncated: false,
          stderrTruncated: false,
        },
      }
    : {}),
});

describe('audit spool while PostgreSQL is down', () => {
  let cluster: PgCluster;
  let ds: DataSource;
  let spoolDir: string;

  beforeAll(async () => {
    cluster = await startPgCluster();
    spoolDir = mkdtempSync(join(tmpdir(), 'lq-audit-spool-'));
    ds = createDataSource(cluster.url(), undefined, { max: 4, waitMs: 2000 });
    await ds.initialize();
    await runMigrationsLocked(ds);
  }, 120_000);

  afterAll(async () => {
    await ds?.destroy().catch(() => undefined);
    cluster?.destroy();
    rmSync(spoolDir, { recursive: true, force: true });
  });

  it('spools outcomes durably and replays them in order after a crash', async () => {
    const repo = new AuditRepository(ds);
    const spool = new AuditSpool(spoolDir, 1024 * 1024);
    const writer = new AuditWriter((r) => repo.append(r), { ...options, spool }, quiet);
    // Ten operations start (their intents written), then the database goes away.
    const ids = Array.from({ length: 10 }, () => randomUUID());
    for (const [i, id] of ids.entries()) {
      await writer.intent(row('intent', id, i));
    }
    cluster.stop();
    // A new operation is refused (no intent, nothing sent)...
    await expect(writer.intent(row('intent', randomUUID(), 99))).rejects.toThrow();
    // ...while the outcomes of those already running are kept: each resolves once spooled.
    await Promise.all(ids.map((id, i) => writer.record(row('outcome', id, i))));
    expect(spool.pendingBytes).toBeGreaterThan(0);
    // The process dies here: it writes nothing more (close(0) only ends its retries, as a
    // dead process would); what is on disk is all that is left.
    await writer.close(0);
    spool.close();

    cluster.start();
    const again = new AuditSpool(spoolDir, 1024 * 1024);
    expect(again.pendingBytes).toBeGreaterThan(0);
    const replayer = new AuditWriter((r) => repo.append(r), { ...options, spool: again }, quiet);
    for (const deadline = Date.now() + 60_000; !again.empty; await sleep(100)) {
      if (Date.now() > deadline) {
        throw new Error(`spool not replayed: ${again.pendingBytes} bytes left`);
      }
    }
    await replayer.close(5000);
    again.close();

    const events = (await repo.events({ limit: 100 })).reverse();
    // Every intent, then every outcome in the order they were recorded, each once.
    expect(events.map((e) => `${e.kind}:${(e.params as { i: number }).i}`)).toEqual([
      ...ids.map((_, i) => `intent:${i}`),
      ...ids.map((_, i) => `outcome:${i}`),
    ]);
    expect(events.filter((e) => e.kind === 'outcome').map((e) => e.request_id)).toEqual(ids);
    // The stored output came through the spool intact.
    const history = await repo.executions({ limit: 100 });
    expect(history.find((h) => h.request_id === ids[3])).toMatchObject({ status: 'ok' });
    expect(await repo.verify()).toMatchObject({ ok: true, rows: 20 });
  }, 180_000);

  it('drops a partial last line left by a crash mid-append', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lq-audit-spool-'));
    try {
      const s = new AuditSpool(dir, 1024 * 1024);
      expect(s.append([row('outcome', randomUUID(), 1)])).toBe(true);
      s.close();
      // A torn write: half a line at the end.
      appendFileSync(join(dir, 'audit-spool.ndjson'), '{"kind":"outc');
      const reopened = new AuditSpool(dir, 1024 * 1024);
      const { records } = reopened.peek(10);
      expect(records.map((r) => (r.params as { i: number }).i)).toEqual([1]);
      reopened.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses rows past its size bound', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lq-audit-spool-'));
    try {
      const s = new AuditSpool(dir, 600);
      expect(s.append([row('outcome', randomUUID(), 1)])).toBe(true);
      expect(s.append([row('outcome', randomUUID(), 2)])).toBe(false);
      expect(s.peek(10).records).toHaveLength(1);
      s.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
