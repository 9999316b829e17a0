import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { chainRows, GENESIS_HEAD } from '../audit-rows.js';
import type { AuditRecord } from '../audit-record.js';
import { ChainVerifier, type StoredRow } from './chain-verifier.js';
import { checkpointKeyId, checkpointPublicKey, signCheckpoint } from './checkpoint.js';
import { EXPORT_FORMAT, verifyExport } from './export-format.js';

const pair = () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const raw = publicKey.export({ type: 'spki', format: 'der' }).subarray(-32).toString('base64');
  return { privateKey, keyId: checkpointKeyId(raw), raw, pub: checkpointPublicKey(raw) };
};
const key = pair();
const keys = new Map([[key.keyId, key.pub]]);

const record = (i: number, actor = `user-${i}`): AuditRecord => ({
  kind: 'admin',
  requestId: randomUUID(),
  actor,
  authMethod: 'jwt',
  sourceIp: '127.0.0.1',
  operation: 'user.create',
  params: { i },
});

/** n rows as the table would hold them. */
function table(n: number, actor?: (i: number) => string): StoredRow[] {
  const { events } = chainRows(
    Array.from({ length: n }, (_, i) => record(i + 1, actor?.(i + 1))),
    GENESIS_HEAD,
    new Date('2026-12-01T00:00:00Z'),
  );
  return events.map((e) => ({
    ...e,
    prev_hash: Buffer.from(e.prev_hash, 'hex'),
    hash: Buffer.from(e.hash, 'hex'),
  }));
}

const checkpointOf = (rows: StoredRow[], seq: number, k = key) =>
  signCheckpoint(k, { seq, hash: rows[seq - 1]!.hash.toString('hex') });

function verify(rows: StoredRow[], checkpoints: ReturnType<typeof checkpointOf>[]) {
  const v = new ChainVerifier(keys);
  checkpoints.forEach((c) => v.addCheckpoint(c, 'table'));
  rows.forEach((r) => v.push(r));
  return v.finish();
}

describe('ChainVerifier', () => {
  const rows = table(20);
  const cps = [checkpointOf(rows, 10), checkpointOf(rows, 20)];

  it('should find an intact chain intact and match every checkpoint', () => {
    expect(verify(rows, cps)).toMatchObject({
      ok: true,
      rows: 20,
      last_seq: 20,
      checkpoints_checked: 2,
      checkpoint: { seq: 20, source: 'table' },
    });
  });

  it('should name the first missing row when rows are cut off the end', () => {
    const r = verify(rows.slice(0, 15), cps);
    expect(r.ok).toBe(false);
    expect(r.first_broken).toEqual({
      seq: 16,
      reason: expect.stringMatching(/rows 16\.\.20 are missing/),
    });
  });

  it('should find a table rebuilt with a fresh, consistent chain', () => {
    // What a rewrite looks like: every row re-hashed from genesis, one actor changed.
    const rewritten = table(20, (i) => (i === 7 ? 'someone-else' : `user-${i}`));
    // The request ids differ too (fresh records): keep the originals but for row 7.
    const r = verify(rewritten, cps);
    expect(r.ok).toBe(false);
    expect(r.first_broken).toEqual({
      seq: 1,
      reason: expect.stringMatching(/rows 1\.\.10 were altered/),
    });
  });

  it('should narrow a rewrite after a matching checkpoint to the rows after it', () => {
    const { events } = chainRows(
      Array.from({ length: 10 }, (_, i) => record(i + 11, 'forged')),
      { seq: 10, hash: rows[9]!.hash, at: 0 },
      new Date('2026-12-01T00:00:00Z'),
    );
    const forged = [
      ...rows.slice(0, 10),
      ...events.map((e) => ({
        ...e,
        prev_hash: Buffer.from(e.prev_hash, 'hex'),
        hash: Buffer.from(e.hash, 'hex'),
      })),
    ];
    expect(verify(forged, cps).first_broken?.seq).toBe(11);
  });

  it('should name an edited row by its content', () => {
    const edited = rows.map((r) => (r.seq === 4 ? { ...r, actor: 'x' } : r));
    expect(verify(edited, cps).first_broken).toEqual({
      seq: 4,
      reason: 'content changed: hash does not match the row',
    });
  });

  it('should report a forged checkpoint and ignore one of another key', () => {
    const other = pair();
    const forged = { ...cps[1]!, seq: 25 };
    const r = verify(rows, [...cps, forged, checkpointOf(rows, 20, other)]);
    expect(r.ok).toBe(false);
    expect(r.checkpoint_problems).toEqual([expect.stringMatching(/row 25.*bad signature/)]);
    expect(r.checkpoints_unknown_key).toBe(1);
    expect(r.first_broken).toBeUndefined();
  });

  it('should start after a verified row when given one', () => {
    const v = new ChainVerifier(new Map(), { seq: 10, hash: rows[9]!.hash });
    rows.slice(10).forEach((r) => v.push(r));
    expect(v.finish()).toMatchObject({ ok: true, rows: 10, last_seq: 20 });
  });
});

describe('verifyExport', () => {
  const rows = table(6);
  async function* linesOf(...lines: unknown[]) {
    for (const l of lines) {
      yield typeof l === 'string' ? l : JSON.stringify(l);
    }
  }
  const header = {
    format: EXPORT_FORMAT,
    exported_at: '2026-12-01T00:00:00.000Z',
    public_keys: [],
  };
  const events = rows.map((r) => ({
    type: 'event',
    ...r,
    prev_hash: r.prev_hash.toString('hex'),
    hash: r.hash.toString('hex'),
  }));
  const cp = { type: 'checkpoint', source: 'jetstream', ...checkpointOf(rows, 6) };

  it('should verify a whole export and notice one cut short', async () => {
    const end = { type: 'end', rows: 6, checkpoints: 1 };
    expect(await verifyExport(linesOf(header, cp, ...events, end), keys)).toMatchObject({
      ok: true,
      complete: true,
      checkpoint: { seq: 6, source: 'jetstream' },
    });
    const cut = await verifyExport(linesOf(header, cp, ...events.slice(0, 4)), keys);
    expect(cut).toMatchObject({ ok: false, complete: false, first_broken: { seq: 5 } });
  });

  it('should refuse a file that is not an export, naming the line', async () => {
    await expect(verifyExport(linesOf('{"seq":1}'), keys)).rejects.toThrow(
      /line 1: not an audit export/,
    );
    await expect(verifyExport(linesOf(header, 'nope'), keys)).rejects.toThrow(/line 2: not JSON/);
    await expect(verifyExport(linesOf(header, { ...events[0], hash: 'zz' }), keys)).rejects.toThrow(
      /line 2: hash is not 64 hex digits/,
    );
  });
});
