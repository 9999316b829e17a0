// Audit trail benchmark (issue 5, acceptance 7; issue 18's targets): audited operations per
// second at concurrency 32 through the ordered writer (intent committed, then outcome committed,
// per operation); the p95 of the auditors' history queries through the REST API (by VM, by user,
// by time range, by operation, paging by cursor) on a table seeded with 1 M rows, each query's
// plan (the indexes it uses); and GET /api/audit/verify over the whole chain, streamed, with its
// progress and the control plane's RSS as it goes.
// Run: npm run bench:audit [-- --rows 10000000] [-- --quick] [-- --explain: print whole plans].
// Uses the machine's PostgreSQL (a fresh database, dropped at the end; 10 M rows take ~6 GB) and
// psql (COPY). Prints figures with the machine's load; asserts nothing.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { loadavg } from 'node:os';
import type { DataSource } from 'typeorm';
import {
  AuditRepository,
  AuditWriter,
  CheckpointRepository,
  GENESIS_HASH,
  signCheckpoint,
  sha256Hex,
  chainHash,
  type AuditFilter,
  type AuditRecord,
  type ChainedContent,
} from '@lq/audit';
import { createDataSource } from '../apps/control-plane/src/database/data-source.js';
import { startNatsServer } from '../test/support/nats-server.js';
import { TEST_SIGNING_KEY } from '../test/support/signing.js';
import { createTestDatabase } from '../test/support/postgres.js';
import {
  adminFetch as fetch,
  startControlPlaneProcess,
} from '../test/support/control-plane-process.js';

const quick = process.argv.includes('--quick');
const explain = process.argv.includes('--explain');
// --keep: leave the seeded database (its name is printed) for EXPLAIN sessions; drop it by hand.
const keep = process.argv.includes('--keep');
// --db URL: a database a --keep run seeded (with the same --rows): migrate it, skip seeding and
// the writer, measure the queries (and verify, unless --no-verify) again.
const dbArg = process.argv.indexOf('--db');
const reuse = dbArg > 0 ? process.argv[dbArg + 1] : undefined;
const verifyToo = !process.argv.includes('--no-verify');
const rowsArg = process.argv.indexOf('--rows');
const SEED_ROWS = rowsArg > 0 ? Number(process.argv[rowsArg + 1]) : quick ? 200_000 : 1_000_000;
if (!Number.isSafeInteger(SEED_ROWS) || SEED_ROWS < 2000) {
  throw new Error(
    `--rows must be a whole number of at least 2000, not ${process.argv[rowsArg + 1]}`,
  );
}
const OPS = quick ? 4000 : 20_000;
const CONCURRENCY = 32;
const QUERY_RUNS = quick ? 30 : 100;

function p(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
}

const log = (line: string) => process.stdout.write(`${line}\n`);
/** The machine's 1-minute load (2 cores: above 2, everything measured waits for a CPU). */
const load = () => loadavg()[0]!.toFixed(2);
const mib = (bytes: number) => `${(bytes / 1048576).toFixed(0)} MiB`;

// Seeded rows look like production ones (pairs of intent and outcome, 80% executions, 1000 VMs,
// 50 actors, 20 projects, one row every 30 ms) and carry their real chain hashes, so verify
// recomputes a whole chain. They are made here, chained as the writer chains rows, and streamed
// to PostgreSQL with COPY (through psql: pg has no COPY of its own) with the table's secondary
// indexes dropped first and built once at the end, which is what makes 10 M rows take minutes.
const COPY_COLUMNS = `seq, at, kind, request_id, actor, auth_method, source_ip, vm_id, node_id,
  project_id, operation, params, status, exit_code, duration_ms, error, stdout_sha256,
  stdout_bytes, stderr_sha256, stderr_bytes, prev_hash, hash`;

/** 32 pseudo-random bits of n (a bijection of 32-bit integers; the same n, the same bits). */
function mix32(n: number): number {
  let x = n | 0;
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}
const hex8 = (n: number) => n.toString(16).padStart(8, '0');

/** The request id of a seeded pair: unique per pair, spread like random UUIDs. */
function pairUuid(pair: number): string {
  const a = hex8(mix32(pair));
  const b = hex8(mix32(pair ^ 0x5bd1e995));
  const c = hex8(mix32(pair + 0x27d4eb2f));
  const d = hex8(mix32(~pair));
  return `${a}-${b.slice(0, 4)}-4${b.slice(5, 8)}-8${c.slice(1, 4)}-${c.slice(4)}${d}`;
}

/** Row `seq` of the seeded trail, as contentOf reads it back from PostgreSQL. */
function seededRow(seq: number, baseMs: number): ChainedContent {
  const pair = (seq + 1) >> 1;
  const intent = seq % 2 === 1;
  const op = pair % 10;
  return {
    seq,
    at: new Date(baseMs + seq * 30).toISOString(),
    kind: intent ? 'intent' : 'outcome',
    request_id: pairUuid(pair),
    actor: `user-${pair % 50}`,
    auth_method: `api_key:bench${pair % 50}`,
    source_ip: `10.0.${pair % 7}.${pair % 250}`,
    vm_id: `vm-${pair % 1000}`,
    node_id: `node-${pair % 40}`,
    project_id: `proj-${pair % 20}`,
    operation: op < 8 ? 'execute' : op === 8 ? 'ping' : 'file.read',
    params: intent ? { command: `systemctl status app-${seq % 97}` } : {},
    status: intent ? null : seq % 40 === 0 ? 'AGENT_NOT_CONNECTED' : 'ok',
    exit_code: intent ? null : seq % 3,
    duration_ms: intent ? null : seq % 500,
    error: null,
    stdout_sha256: intent ? null : hex8(mix32(seq)).repeat(8),
    stdout_bytes: intent ? null : seq % 4096,
    stderr_sha256: intent ? null : hex8(mix32(-seq)).repeat(8),
    stderr_bytes: intent ? null : 0,
  };
}

const copyValue = (v: string | number | object | null): string =>
  v === null ? '\\N' : typeof v === 'object' ? JSON.stringify(v) : String(v);

/**
 * Appends rows 1..rows to an empty audit_events, chained from genesis; returns the head's hash.
 * Memory stays one chunk of COPY text (psql's stdin is written with back-pressure).
 */
async function seed(ds: DataSource, url: string, rows: number, baseMs: number): Promise<Buffer> {
  const indexes = await ds.query<Array<{ indexname: string; indexdef: string }>>(
    `SELECT indexname, indexdef FROM pg_indexes
     WHERE tablename = 'audit_events' AND indexname <> 'audit_events_pkey'`,
  );
  for (const i of indexes) {
    await ds.query(`DROP INDEX ${i.indexname}`);
  }
  const psql = spawn(
    'psql',
    [url, '-q', '-v', 'ON_ERROR_STOP=1', '-c', `COPY audit_events (${COPY_COLUMNS}) FROM STDIN`],
    { stdio: ['pipe', 'inherit', 'inherit'] },
  );
  const exited = new Promise<void>((resolve, reject) => {
    psql.once('error', (err) =>
      reject(new Error(`psql (needed for COPY) could not start: ${err.message}`)),
    );
    psql.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`psql COPY exited with ${code}`)),
    );
  });
  let prev: Buffer = GENESIS_HASH;
  let chunk = '';
  const started = performance.now();
  for (let seq = 1; seq <= rows; seq++) {
    const row = seededRow(seq, baseMs);
    const hash = chainHash(prev, row);
    chunk += `${(Object.values(row) as Array<string | number | object | null>).map(copyValue).join('\t')}\t\\\\x${prev.toString('hex')}\t\\\\x${hash.toString('hex')}\n`;
    prev = hash;
    if (chunk.length > 1 << 20 || seq === rows) {
      if (!psql.stdin.write(chunk)) {
        await Promise.race([once(psql.stdin, 'drain'), exited]);
      }
      chunk = '';
    }
    if (seq % 1_000_000 === 0) {
      log(
        `  seeding: ${(seq / 1e6).toFixed(0)} M rows in ${((performance.now() - started) / 1000).toFixed(0)} s (bench RSS ${(process.memoryUsage.rss() / 1048576).toFixed(0)} MiB)   load ${load()}`,
      );
    }
  }
  psql.stdin.end();
  await exited;
  const built = performance.now();
  // One connection, without the data source's statement timeout: an index over 10 M rows takes
  // minutes on a busy machine.
  const qr = ds.createQueryRunner();
  try {
    await qr.query(`SET statement_timeout = 0`);
    await qr.query(`SET maintenance_work_mem = '256MB'`);
    for (const i of indexes) {
      await qr.query(i.indexdef);
    }
    await qr.query('ANALYZE audit_events');
    await qr.query('RESET statement_timeout');
    await qr.query('RESET maintenance_work_mem');
  } finally {
    await qr.release();
  }
  log(
    `  indexes rebuilt (${indexes.length}) in ${((performance.now() - built) / 1000).toFixed(0)} s`,
  );
  return prev;
}

type Query = {
  name: string;
  api: 'events' | 'executions';
  filter: () => Omit<AuditFilter, 'limit'>;
};

/** The REST path of an auditor query (the API's own parameter names). */
function pathOf(q: Query['api'], f: Omit<AuditFilter, 'limit'>): string {
  const params = new URLSearchParams();
  const set = (k: string, v: string | undefined) => v !== undefined && params.set(k, v);
  set('actor', f.actor);
  set('vm_id', f.vmId);
  set('project', f.projectId);
  set('operation', f.operation);
  set('kind', f.kind);
  set('outcome', f.outcome);
  set('from', f.from?.toISOString());
  set('to', f.to?.toISOString());
  set('cursor', f.beforeSeq?.toString());
  return `/api/audit/${q}?${params.toString()}`;
}

/**
 * The plan PostgreSQL chooses for an auditor query, as the repository builds it: the query is
 * run under EXPLAIN ANALYZE through a DataSource stand-in that keeps the plan and answers no rows.
 */
async function planOf(ds: DataSource, q: Query['api'], f: AuditFilter): Promise<string[]> {
  const plan: string[] = [];
  const explaining = {
    query: async (sql: string, params: unknown[]) => {
      const rows = await ds.query<Array<{ 'QUERY PLAN': string }>>(
        `EXPLAIN (ANALYZE, BUFFERS) ${sql}`,
        params,
      );
      // Every statement the call made (the outcome filter may make two).
      plan.push(...rows.map((r) => r['QUERY PLAN']));
      return [];
    },
  } as unknown as DataSource;
  const repo = new AuditRepository(explaining);
  await (q === 'events' ? repo.events(f) : repo.executions(f));
  return plan;
}

async function main(): Promise<void> {
  const db = reuse
    ? { url: reuse, drop: () => Promise.resolve() }
    : await createTestDatabase('lq_bench_audit');
  const ds = createDataSource(db.url);
  const nats = await startNatsServer({ jetstream: true });
  let cp: Awaited<ReturnType<typeof startControlPlaneProcess>> | undefined;
  try {
    await ds.initialize();
    await ds.runMigrations({ transaction: 'each' });
    log(`LimiQuantix audit benchmark (node ${process.version}; PostgreSQL on this machine)`);

    let baseMs = Date.now() - SEED_ROWS * 30 - 60_000;
    if (reuse) {
      const first = await ds.query<Array<{ at: Date }>>(
        'SELECT at FROM audit_events WHERE seq = 1',
      );
      baseMs = first[0]!.at.getTime() - 30;
    } else {
      await seedAndWrite(ds, db.url, baseMs);
    }
    await queriesAndVerify(ds, db.url, nats.url, baseMs, (c) => (cp = c));
  } finally {
    await cp?.stop();
    await ds.destroy().catch(() => undefined);
    await nats.stop();
    if (keep || reuse) {
      log(`database kept: ${db.url}`);
    } else {
      await db.drop();
    }
  }
}

async function seedAndWrite(ds: DataSource, url: string, baseMs: number): Promise<void> {
  {
    // 1. Seed.
    const seedStarted = performance.now();
    const head = await seed(ds, url, SEED_ROWS, baseMs);
    // The checkpoint a running control plane would have signed of that head: without it, the
    // first one it starts verifies the whole seeded chain while the queries are measured.
    await new CheckpointRepository(ds).insert(
      signCheckpoint(TEST_SIGNING_KEY, { seq: SEED_ROWS, hash: head.toString('hex') }),
    );
    const size = await ds.query<Array<{ s: string }>>(
      `SELECT pg_size_pretty(pg_total_relation_size('audit_events')) AS s`,
    );
    log(
      `seeded ${SEED_ROWS.toLocaleString('en')} chained rows in ${((performance.now() - seedStarted) / 1000).toFixed(1)} s; table + indexes ${size[0]?.s}   load ${load()}`,
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
      const stdout = Buffer.from(`${i}\n`);
      await writer.record({
        ...row,
        kind: 'outcome',
        status: 'ok',
        exitCode: 0,
        durationMs: 3,
        stdout: { sha256: sha256Hex(stdout), bytes: stdout.length },
        stderr: { sha256: sha256Hex(new Uint8Array()), bytes: 0 },
        output: {
          stdout,
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
      `audited operations at concurrency ${CONCURRENCY}   ${Math.round(rate).toLocaleString('en')} ops/s (intent + outcome committed each; n=${OPS}; p50 ${p(lat, 0.5).toFixed(2)} ms, p99 ${p(lat, 0.99).toFixed(2)} ms)   target ≥ 2,000 ops/s   load ${load()}`,
    );
    log(
      '  (the full path, REST → audit → NATS → node daemon → agent, is in npm run bench:control-plane)',
    );
  }
}

async function queriesAndVerify(
  ds: DataSource,
  url: string,
  natsUrl: string,
  baseMs: number,
  started: (cp: Awaited<ReturnType<typeof startControlPlaneProcess>>) => void,
): Promise<void> {
  {
    // 3. Auditor queries through the API, on the seeded table: the command history's filters.
    const cp = await startControlPlaneProcess({ databaseUrl: url, natsUrl });
    started(cp);
    const last = baseMs + SEED_ROWS * 30;
    const span = SEED_ROWS * 30;
    const rnd = (n: number) => Math.floor(Math.random() * n);
    const window = (ms: number) => {
      const from = baseMs + rnd(Math.max(1, span - ms));
      return { from: new Date(from), to: new Date(from + ms) };
    };
    const cursor = () => SEED_ROWS - rnd(Math.floor(SEED_ROWS / 2));
    // A VM's actor: seeded rows tie VM n to user n mod 50 (as a team owns its machines).
    const vm = () => rnd(1000);
    const queries: Query[] = [
      {
        name: 'executions of a VM (newest 100)',
        api: 'executions',
        filter: () => ({ vmId: `vm-${vm()}` }),
      },
      {
        name: 'executions of a VM in a 6 h window',
        api: 'executions',
        filter: () => ({ vmId: `vm-${vm()}`, ...window(6 * 3_600_000) }),
      },
      {
        name: 'executions of a VM, page by cursor',
        api: 'executions',
        filter: () => ({ vmId: `vm-${vm()}`, beforeSeq: cursor() }),
      },
      {
        name: 'events of a user (newest 100)',
        api: 'events',
        filter: () => ({ actor: `user-${rnd(50)}` }),
      },
      {
        name: 'executions of a user, page by cursor',
        api: 'executions',
        filter: () => ({ actor: `user-${rnd(50)}`, beforeSeq: cursor() }),
      },
      {
        name: 'executions of a user in a 1 h window',
        api: 'executions',
        filter: () => ({ actor: `user-${rnd(50)}`, ...window(3_600_000) }),
      },
      {
        name: 'a user on one of their VMs',
        api: 'executions',
        filter: () => {
          const v = vm();
          return { actor: `user-${v % 50}`, vmId: `vm-${v}` };
        },
      },
      {
        name: 'events of an operation (file.read)',
        api: 'events',
        filter: () => ({ operation: 'file.read' }),
      },
      {
        name: 'an operation in a 1 h window, by cursor',
        api: 'events',
        filter: () => {
          const w = window(3_600_000);
          return { operation: 'ping', ...w, beforeSeq: Math.round((w.to.getTime() - baseMs) / 30) };
        },
      },
      {
        name: 'failed outcomes of a project',
        api: 'events',
        filter: () => ({ projectId: `proj-${rnd(20)}`, outcome: 'error', kind: 'outcome' }),
      },
      // None of the seeded outcomes is `failed`: the filter nothing matches, the worst case of
      // a walk of the intents (it probed every execution's outcome: 5-17 s at 10 M rows).
      { name: 'failed executions', api: 'executions', filter: () => ({ outcome: 'failed' }) },
      {
        name: 'a user’s executions that did not end ok',
        api: 'executions',
        filter: () => ({ actor: `user-${rnd(50)}`, outcome: 'error' }),
      },
      { name: 'every event in a 1 min window', api: 'events', filter: () => window(60_000) },
      {
        name: 'every execution in the last day',
        api: 'executions',
        filter: () => ({ from: new Date(last - 86_400_000) }),
      },
    ];
    const all: number[] = [];
    for (const q of queries) {
      const times: number[] = [];
      for (let i = 0; i < QUERY_RUNS; i++) {
        const path = pathOf(q.api, q.filter());
        const t = performance.now();
        const res = await fetch(`${cp.url}${path}`);
        await res.arrayBuffer();
        if (res.status !== 200) {
          throw new Error(`${q.name}: HTTP ${res.status} for ${path}`);
        }
        times.push(performance.now() - t);
      }
      all.push(...times);
      const plan = await planOf(ds, q.api, { ...q.filter(), limit: 100 });
      const used = [
        ...new Set(
          plan
            .flatMap((l) => [...l.matchAll(/(?:Scan(?: Backward)? using|Index Scan on) (\w+)/g)])
            .map((m) => m[1]),
        ),
      ];
      const seqScan = plan.some((l) => /Seq Scan on audit_events/.test(l));
      log(
        `  ${q.name.padEnd(42)} p50 ${p(times, 0.5).toFixed(1).padStart(5)} ms  p95 ${p(times, 0.95).toFixed(1).padStart(5)} ms   ${seqScan ? 'SEQ SCAN, ' : ''}${used.join(', ')}`,
      );
      if (explain) {
        log(plan.map((l) => `      ${l}`).join('\n'));
      }
    }
    log(
      `auditor query p95 over ${(SEED_ROWS / 1e6).toLocaleString('en')} M rows (through REST, ${all.length} queries)   ${p(all, 0.95).toFixed(1)} ms   target ≤ 50 ms   load ${load()}`,
    );
    const t = performance.now();
    const exported = await fetch(
      `${cp.url}/api/audit/executions?actor=user-7&format=ndjson&limit=10000`,
    );
    const text = await exported.text();
    log(
      `NDJSON export of 10,000 executions     ${(performance.now() - t).toFixed(0)} ms (${(text.length / 1024 / 1024).toFixed(1)} MiB)`,
    );

    if (!verifyToo) {
      return;
    }
    // 4. Verify the whole chain through the API, streamed: progress lines as pages are checked,
    // the control plane's RSS sampled meanwhile (bounded: one page of rows at a time).
    const total = SEED_ROWS + 2 * OPS;
    const before = cp.memory().rss;
    let peak = before;
    const sampler = setInterval(() => {
      peak = Math.max(peak, cp.memory().rss);
    }, 200);
    const vStarted = performance.now();
    const res = await fetch(`${cp.url}/api/audit/verify?progress=true`);
    if (res.status !== 200 || !res.body) {
      throw new Error(`verify: HTTP ${res.status}`);
    }
    let buffered = '';
    let progressLines = 0;
    let report:
      | { ok: boolean; rows: number; first_broken?: unknown; checkpoints_checked: number }
      | undefined;
    let nextPrint = Math.max(100_000, Math.ceil(total / 10));
    const decoder = new TextDecoder();
    for await (const chunk of res.body) {
      buffered += decoder.decode(chunk as Uint8Array, { stream: true });
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = JSON.parse(buffered.slice(0, nl)) as {
          progress?: { rows: number };
          report?: typeof report;
        };
        buffered = buffered.slice(nl + 1);
        if (line.progress) {
          progressLines++;
          peak = Math.max(peak, cp.memory().rss);
          if (line.progress.rows >= nextPrint) {
            const s = (performance.now() - vStarted) / 1000;
            log(
              `  verify: ${line.progress.rows.toLocaleString('en')} rows in ${s.toFixed(0)} s (${Math.round(line.progress.rows / s).toLocaleString('en')} rows/s), control plane RSS ${mib(cp.memory().rss)}   load ${load()}`,
            );
            nextPrint += Math.max(100_000, Math.ceil(total / 10));
          }
        }
        report = line.report ?? report;
      }
    }
    clearInterval(sampler);
    const vSeconds = (performance.now() - vStarted) / 1000;
    log(
      `verify of ${report?.rows.toLocaleString('en')} rows (streamed, ${progressLines} progress lines)   ${report?.ok ? 'intact' : `NOT INTACT ${JSON.stringify(report)}`} in ${vSeconds.toFixed(0)} s (${Math.round((report?.rows ?? 0) / vSeconds).toLocaleString('en')} rows/s), ${report?.checkpoints_checked} checkpoints; control plane RSS ${mib(before)} before, peak ${mib(peak)} during   load ${load()}`,
    );
    if (!report?.ok) {
      process.exitCode = 1;
    }
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
