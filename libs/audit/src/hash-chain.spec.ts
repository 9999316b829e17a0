import { describe, expect, it } from '@jest/globals';
import { chainedContentOf } from './offline/chain-verifier.js';
import {
  GENESIS_HASH,
  canonicalJson,
  chainHash,
  chainedJson,
  intentDigest,
  type ChainedContent,
  type IntentContent,
} from './hash-chain.js';
import { createHash } from 'node:crypto';

const row = (seq: number, extra: Partial<ChainedContent> = {}): ChainedContent => ({
  seq,
  at: '2026-11-27T00:00:00.000Z',
  kind: 'intent',
  request_id: '00000000-0000-4000-8000-000000000001',
  actor: 'alice',
  auth_method: 'jwt',
  source_ip: '10.0.0.1',
  vm_id: 'vm-1',
  node_id: 'node-1',
  project_id: 'p',
  operation: 'execute',
  params: { command: 'id', env: { B: '2', A: '1' } },
  status: null,
  exit_code: null,
  duration_ms: null,
  error: null,
  stdout_sha256: null,
  stdout_bytes: null,
  stderr_sha256: null,
  stderr_bytes: null,
  ...extra,
});

describe('canonicalJson', () => {
  it('should give the same text whatever the key order, at every depth', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 0, y: 1 }], c: 'x' } })).toBe(
      canonicalJson({ a: { c: 'x', d: [1, { y: 1, z: 0 }] }, b: 1 }),
    );
    expect(canonicalJson({ b: 1, a: null, u: undefined })).toBe('{"a":null,"b":1}');
  });
});

describe('chainHash', () => {
  it('should change when the content, the order or the previous hash changes', () => {
    const h1 = chainHash(GENESIS_HASH, row(1));
    expect(chainHash(GENESIS_HASH, row(1))).toEqual(h1);
    expect(chainHash(GENESIS_HASH, row(1, { exit_code: 1 }))).not.toEqual(h1);
    expect(chainHash(GENESIS_HASH, row(2))).not.toEqual(h1);
    expect(chainHash(h1, row(1))).not.toEqual(h1);
    expect(
      chainHash(GENESIS_HASH, row(1, { params: { env: { A: '1', B: '2' }, command: 'id' } })),
    ).toEqual(h1);
  });
});

describe('chainedJson', () => {
  it('should give the bytes canonicalJson gives for the chained columns, whatever else the row holds', () => {
    const rows: ChainedContent[] = [
      row(1),
      row(2, { kind: 'outcome', status: 'ok', exit_code: 0, duration_ms: 12, params: {} }),
      row(3, { params: { z: [3, { b: 'é\u2028"\\\\', a: null }], a: -0, n: Number.NaN } }),
      row(4, { stdout_bytes: 4096, stdout_sha256: 'ab'.repeat(32), error: 'line\nbreak\t"q"' }),
      { ...row(5), vm_id: undefined as unknown as null },
      { ...row(6), prev_hash: 'x', hash: 'y', extra: { b: 1 } } as unknown as ChainedContent,
    ];
    for (const r of rows) {
      expect(chainedJson(r)).toBe(canonicalJson(chainedContentOf(r)));
    }
  });
});

// canonicalJson and intentDigest as they were first written (sorted entries, copies), which
// auditors' tools reproduce: the one-pass versions must give the same bytes.
function referenceCanonical(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) {
      return 'null';
    }
    return JSON.stringify(value ?? null);
  }
  if (Array.isArray(value)) {
    return `[${value.map(referenceCanonical).join(',')}]`;
  }
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${referenceCanonical(v)}`).join(',')}}`;
}

function referenceIntentDigest(content: IntentContent): string {
  const { params } = content;
  const rest =
    params && typeof params === 'object' && !Array.isArray(params)
      ? Object.fromEntries(Object.entries(params).filter(([k]) => k !== 'authorization'))
      : params;
  return createHash('sha256')
    .update(referenceCanonical({ ...content, params: rest ?? null }), 'utf8')
    .digest('hex');
}

describe('canonicalJson and intentDigest in one pass', () => {
  const values: unknown[] = [
    { b: 1, a: { d: [1, { z: 0, y: 1 }], c: 'x' }, u: undefined },
    { é: 1, Z: 2, a: 3, '10': 4, '9': 5, '': 6, a_b: [null, undefined, -0, Number.NaN] },
    [{ b: '\u2028"\\' }, [], {}, 'x', 1.5, true],
    new Date(0),
    'text',
    null,
  ];
  it('should give the bytes of the first version for any value', () => {
    for (const v of values) {
      expect(canonicalJson(v)).toBe(referenceCanonical(v));
    }
  });

  it('should digest an intent as the first version did, authorization left out', () => {
    const base: IntentContent = {
      request_id: '00000000-0000-4000-8000-000000000001',
      actor: 'alice',
      auth_method: 'jwt',
      source_ip: '10.0.0.1',
      vm_id: 'vm-1',
      node_id: null,
      project_id: 'p',
      operation: 'execute',
      params: { command: 'id', env: { B: '2', A: '1' }, authorization: { signature: 'x' } },
    };
    const variants: IntentContent[] = [
      base,
      { ...base, params: {} },
      { ...base, params: { authorization: 1 } },
      { ...base, params: null },
      { ...base, params: undefined },
      { ...base, params: [1, { b: 2, a: 1 }] },
      { ...base, params: 'plain' },
      { ...base, vm_id: undefined as unknown as null },
      (({ params: _p, ...rest }) => rest as IntentContent)(base),
    ];
    for (const c of variants) {
      expect(intentDigest(c)).toBe(referenceIntentDigest(c));
    }
    expect(intentDigest(base)).toBe(
      intentDigest({ ...base, params: { env: { A: '1', B: '2' }, command: 'id' } }),
    );
  });
});
