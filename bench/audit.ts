// Audit trail benchmark (issue 5, acceptance 7): audited operations per second at concurrency
// 32 through the ordered writer (intent committed, then outcome committed, per operation), and
// the p95 of auditor queries through the REST API on a table seeded with 1 M rows.
// Run: npm run bench:audit [-- --rows 10000000] [-- --quick]. Uses the machine's PostgreSQL
// (a fresh database, dropped at the end). Prints figures; asserts nothing.
import { randomUUID } from 'node:crypto';
import { AuditRepository, AuditWriter, type AuditRecord } from '@lq/audit';
import { createDataSource } from '../apps/control-plane/src/database/data-source.js';
import { startNatsServer } from '../test/support/nats-server.js';
import { createTestDatabase } from '../test/support/postgres.js';
import {
  adminFetch as fetch,
  startControlPlaneProcess,
} from '../test/support/control-plane-process.js';

const quick = process.argv.includes('--quick');
const rowsArg = process.argv.indexOf('--rows');
const SEED_ROWS = rowsArg > 0 ? Number(process.argv[rowsArg + 1]) : quick ? 200_000 : 1_000_000;
const OPS = quick ? 4000 : 20_000;
const CONCURRENCY = 32;
const QUERY_RUNS = quick ? 30 : 100;

function p(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
}

const log = (line: string) => process.stdout.write(`${line}\n`);

// Seeded rows look like production ones (pairs of intent and outcome, 80% executions, 1000 VMs,
// 50 actors, 20 projects, one row every 30 ms) but carry placeholder hashes: the chain is not
// what this measures, and verify would report them.
const SEED = `
  INSERT INTO audit_events (seq, at, kind, request_id, actor, auth_method, source_ip, vm_id,
    node_id, project_id, operation, params, status, exit_code, duration_ms, error,
    stdout_sha256, stdout_bytes, stderr_sha256, stderr_bytes, prev_hash, hash)
  SELECT g,
         $3::timestamptz + g * interval '30 milliseconds',
         CASE WHEN g % 2 = 1 THEN 'intent' ELSE 'outcome' END,
         md5(((g + 1) / 2)::text)::uuid,
         'user-' || ((g + 1) / 2 % 50),
         'api_key:bench' || ((g + 1) / 2 % 50),
         '10.0.' || ((g + 1) / 2 % 7) || '.' || ((g + 1) / 2 % 250),
         'vm-' || ((g + 1) / 2 % 1000),
         'node-' || ((g + 1) / 2 % 40),
         'proj-' || ((g + 1) / 2 % 20),
         CASE WHEN (g + 1) / 2 % 10 < 8 THEN 'execute' WHEN (g + 1) / 2 % 10 = 8 THEN 'ping' ELSE 'file.read' END,
         CASE WHEN g % 2 = 1 THEN jsonb_build_object('command', 'systemctl status app-' || (g % 97))
              ELSE '{}'::jsonb END,
         CASE WHEN g % 2 = 1 THEN NULL WHEN g % 40 = 0 THEN 'AGENT_NOT_CONNECTED' ELSE 'ok' END,
         CASE WHEN g % 2 = 0 THEN (g % 3) END,
         CASE WHEN g % 2 = 0 THEN (g % 500) END,
         NULL,
         CASE WHEN g % 2 = 0 THEN md5(g::text) || md5(g::text) END,
         CASE WHEN g % 2 = 0 THEN g % 4096 END,
         CASE WHEN g % 2 = 0 THEN md5((-g)::text) || md5((-g)::text) END,
         CASE WHEN g % 2 = 0 THEN 0 END,
         sha256(int8send(g - 1)), sha256(int8send(g))
  FROM generate_series($1::bigint, $2::bigint) AS g`;

async function main(): Promise<void> {
  const db = await createTestDatabase('lq_bench_audit');
  const ds = createDataSource(db.url);
  const nats = await startNatsServer();
  let cp: Awaited<ReturnType<typeof startControlPlaneProcess>> | undefined;
  try {
    await ds.initialize();
    await ds.runMigrations();

    // 1. Seed.
    const seedStarted = performance.now();
    const base = new Date(Date.now() - SEED_ROWS * 30);
    for (let from = 1; from <= SEED_ROWS; from += 200_000) {
      await ds.query(SEED, [from, Math.min(SEED_ROWS, from + 199_999), base]);
    }
    await ds.query('ANALYZE audit_events');
    const size = await ds.query<Array<{ s: string }>>(
      `SELECT pg_size_pretty(pg_total_relation_size('audit_events')) AS s`,
    );
    log(`LimiQuantix audit benchmark (node ${process.version}; PostgreSQL on this machine)`);
    log(
      `seeded ${SEED_ROWS.toLocaleString('en')} rows in ${((performance.now() - seedStarted) / 1000).toFixed(1)} s; table + indexes ${size[0]?.s}`,
    );

    // 2. Audited operations/s through the ordered writer: each operation commits its intent,
    // then its outcome (what every guest operation waits for), 32 at a time.
    const repo = new AuditRepository(ds);
    const writer = new AuditWriter(
      (records) => repo.append(records),
      { maxBatch: 256, writeTimeoutMs: 10_000, maxPending: 100_000, retryDelayMs: 100 },
      { warn: log, error: log },
    );
    const op = async (i: number) => {
      const row: Omit<AuditRecord, 'kind'> = {
        actor: `user-${i % 50}`,
        authMethod: 'api_key:benchkey',
        sourceIp: '10.1.2.3',
        requestId: randomUUID(),
        vmId: `vm-${i % 1000}`,
        nodeId: `node-${i % 40}`,
        projectId: `proj-${i % 20}`,
        operation: 'execute',
      };
      await writer.intent({ ...row, kind: 'intent', params: { command: `echo ${i}` } });
      await writer.record({
        ...row,
        kind: 'outcome',
        status: 'ok',
        exitCode: 0,
        durationMs: 3,
        stdout: { sha256: 'a'.repeat(64), bytes: 10 },
        stderr: { sha256: 'b'.repeat(64), bytes: 0 },
        output: {
          stdout: Buffer.from(`${i}\n`),
          stderr: new Uint8Array(),
          stdoutTruncated: false,
          stderrTruncated: false,
        },
      });
    };
    let next = 0;
    const lat: number[] = [];
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < OPS) {
          const i = next++;
          const t = performance.now();
          await op(i);
          lat.push(performance.now() - t);
        }
      }),
    );
    const rate = OPS / ((performance.now() - t0) / 1000);
    await writer.close(5000);
    log(
      `audited operations at concurrency ${CONCURRENCY}   ${Math.round(rate).toLocaleString('en')} ops/s (intent + outcome committed each; n=${OPS}; p50 ${p(lat, 0.5).toFixed(2)} ms, p99 ${p(lat, 0.99).toFixed(2)} ms)   target ≥ 2,000 ops/s`,
    );
    log(
      '  (the full path, REST → audit → NATS → node daemon → agent, is in npm run bench:control-plane)',
    );

    // 3. Auditor queries through the API, on the seeded table.
    cp = await startControlPlaneProcess({
      databaseUrl: db.url,
      natsUrl: nats.url,
    });
    const last = new Date(base.getTime() + SEED_ROWS * 30);
    const rnd = (n: number) => Math.floor(Math.random() * n);
    const dayAgo = (h: number) => new Date(last.getTime() - h * 3_600_000).toISOString();
    const queries: Array<[string, () => string]> = [
      [
        'executions of a VM in a 6 h window',
        () => {
          const h = rnd(Math.max(1, (SEED_ROWS * 30) / 3_600_000 - 6));
          return `/api/audit/executions?vm_id=vm-${rnd(1000)}&from=${dayAgo(h + 6)}&to=${dayAgo(h)}`;
        },
      ],
      ['events of an actor (newest 100)', () => `/api/audit/events?actor=user-${rnd(50)}`],
      [
        'failed outcomes of a project',
        () => `/api/audit/events?project=proj-${rnd(20)}&outcome=error&kind=outcome`,
      ],
      [
        'executions of an actor, page 2',
        () =>
          `/api/audit/executions?actor=user-${rnd(50)}&cursor=${SEED_ROWS - rnd(SEED_ROWS / 2)}`,
      ],
      [
        'every event in a 1 min window',
        () => {
          const t = base.getTime() + rnd(SEED_ROWS * 30 - 60_000);
          return `/api/audit/events?from=${new Date(t).toISOString()}&to=${new Date(t + 60_000).toISOString()}`;
        },
      ],
    ];
    const all: number[] = [];
    for (const [name, path] of queries) {
      const times: number[] = [];
      for (let i = 0; i < QUERY_RUNS; i++) {
        const t = performance.now();
        const res = await fetch(`${cp.url}${path()}`);
        await res.arrayBuffer();
        if (res.status !== 200) {
          throw new Error(`${name}: HTTP ${res.status}`);
        }
        times.push(performance.now() - t);
      }
      all.push(...times);
      log(
        `  ${name.padEnd(38)} p50 ${p(times, 0.5).toFixed(1)} ms  p95 ${p(times, 0.95).toFixed(1)} ms`,
      );
    }
    log(
      `auditor query p95 over ${(SEED_ROWS / 1e6).toLocaleString('en')} M rows (through REST, ${all.length} queries)   ${p(all, 0.95).toFixed(1)} ms   target ≤ 50 ms`,
    );
    const t = performance.now();
    const exported = await fetch(
      `${cp.url}/api/audit/executions?actor=user-7&format=ndjson&limit=10000`,
    );
    const text = await exported.text();
    log(
      `NDJSON export of 10,000 executions     ${(performance.now() - t).toFixed(0)} ms (${(text.length / 1024 / 1024).toFixed(1)} MiB)`,
    );
  } finally {
    await cp?.stop();
    await ds.destroy().catch(() => undefined);
    await nats.stop();
    await db.drop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
