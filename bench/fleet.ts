// Fleet run benchmark (issue 8, acceptance 6): one run of /bin/true over many simulated VMs
// (real guest agents) spread over 10 node daemons, at full concurrency; prints the total time
// and the audit rows it left. Target: 1,000 VMs in ≤ 5 s with exactly 1,000 executions audited.
// Exits non-zero when the run did not succeed on every VM or its audit rows do not match
// (one intent and one outcome per VM, no intent without an outcome); the time is printed.
// Run: npm run bench:fleet [-- --vms N] [--daemons D] [--per-process K] [--no-jetstream] [--trace]
// [--node-agents].
// --trace counts what crossed NATS during the run, by kind. A Node.js
// process is about 50 MiB, so 1,000 agent processes would need about 50 GiB: the simulated VMs
// share processes, K agents each (default: all of a node daemon's VMs in one; --per-process 1
// gives each its own). Each is still the real agent, on its own socket, running its own commands.
// The agents run on Bun, the runtime the shipped agent executables are built with
// (scripts/build-executables.mjs): a Node.js process forks to start each command, copying its
// page tables, which in a process shared by 100 agents costs several times what one agent's
// own process would; Bun starts commands without a fork's copy. --node-agents runs them on
// Node.js instead (the bundle `npm run agent` runs).
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { childrenCpuSeconds, cpuSeconds, machineCpuSeconds } from './cpu.js';
import { cpus, freemem, tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { connect } from '@nats-io/transport-node';
import { startNatsServer } from '../test/support/nats-server.js';
import { startSimVms, type SimVms } from '../test/support/sim-vms.js';
import { startNodeDaemon, type RunningNodeDaemon } from '../test/support/node-daemon-process.js';
import { createTestDatabase } from '../test/support/postgres.js';
import {
  adminFetch,
  startControlPlaneProcess,
  waitForReadyVms,
} from '../test/support/control-plane-process.js';

/** One agent process, and what each further agent in a shared process adds. */
const PROCESS_MIB = 60;
const SHARED_AGENT_MIB = 1;
const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const VMS = arg('--vms', 1000);
const DAEMONS = arg('--daemons', 10);
const PER_PROCESS = arg('--per-process', Math.ceil(VMS / DAEMONS));
// As deployed (deploy/nats): the servers have JetStream, so execution output goes through its
// stream; --no-jetstream measures NATS core alone.
const JETSTREAM = !process.argv.includes('--no-jetstream');
const NODE_AGENTS = process.argv.includes('--node-agents');

/** The npm package bun's binary (as scripts/build-executables.mjs finds it), or undefined. */
function bunBinary(): string | undefined {
  try {
    const pkg = createRequire(join(process.cwd(), 'package.json')).resolve('bun/package.json');
    return join(dirname(pkg), 'bin/bun.exe');
  } catch {
    return undefined;
  }
}
/** How often the bench asks whether the run has ended (the time comes from its ended_at). */
const POLL_MS = 250;
const log = (line: string) => process.stdout.write(`${line}\n`);
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

async function main(): Promise<void> {
  for (const [name, value, max] of [
    ['--vms', VMS, 2000],
    ['--daemons', DAEMONS, 100],
    ['--per-process', PER_PROCESS, 2000],
  ] as const) {
    if (!Number.isInteger(value) || value < 1 || value > max) {
      throw new Error(`${name} must be a whole number from 1 to ${max} (got ${value})`);
    }
  }
  const processes = Math.ceil(VMS / DAEMONS / PER_PROCESS) * DAEMONS;
  const needMib = processes * PROCESS_MIB + VMS * SHARED_AGENT_MIB + 1024;
  if (needMib > freemem() / 1024 / 1024) {
    throw new Error(
      `${VMS} agents in ${processes} processes need about ${Math.round(needMib / 1024)} GiB; this machine has ${Math.round(freemem() / 1024 ** 3)} GiB free (raise --per-process)`,
    );
  }
  const runtime = NODE_AGENTS ? undefined : bunBinary();
  if (!NODE_AGENTS && runtime === undefined) {
    throw new Error('no bun binary (the npm package bun): run npm ci, or pass --node-agents');
  }
  const work = mkdtempSync(join(tmpdir(), 'lq-bench-fleet-'));
  const nats = await startNatsServer({ jetstream: JETSTREAM });
  const db = await createTestDatabase('lq_bench_fleet');
  const sims: SimVms[] = [];
  const daemons: RunningNodeDaemon[] = [];
  const cp = await startControlPlaneProcess({
    databaseUrl: db.url,
    natsUrl: nats.url,
    env: { LQ_LOG_LEVEL: 'info' },
  });
  try {
    const t0 = performance.now();
    const per = Math.ceil(VMS / DAEMONS);
    for (let d = 0; d < DAEMONS && d * per < VMS; d++) {
      const dir = join(work, `node-${d}`);
      mkdirSync(dir);
      sims.push(
        await startSimVms({
          dir,
          count: Math.min(per, VMS - d * per),
          prefix: `n${d}-vm-`,
          config: { telemetry_interval_ms: 0 },
          agentsPerProcess: PER_PROCESS,
          runtime,
        }),
      );
      daemons.push(
        await startNodeDaemon({
          nodeId: `node-${d}`,
          natsUrl: nats.url,
          channelDirs: [dir],
          // The daemon's own defaults, as deployed (the test helper's are shorter, for tests
          // that wait for a heartbeat): a heartbeat lists all of its node's VMs.
          env: { LQ_HEARTBEAT_INTERVAL_MS: '5000', LQ_RESCAN_INTERVAL_MS: '2000' },
        }),
      );
    }
    const ids = sims.flatMap((s) => s.vms.map((v) => v.id));
    // The server processes of the bench's database (the control plane's pool, its listeners).
    const pgCpuSeconds = async () => {
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      try {
        const r = await c.query<{ pid: number }>(
          'SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()',
        );
        return r.rows.reduce((a, row) => a + cpuSeconds(row.pid), 0);
      } finally {
        await c.end();
      }
    };
    await waitForReadyVms(cp.url, ids.length, { timeoutMs: 600_000 });
    log(`LimiQuantix fleet benchmark (node ${process.version})`);
    log(
      `${ids.length} simulated VMs (${PER_PROCESS} agents per process, on ${runtime ? 'Bun' : 'Node.js'}) on ${daemons.length} node daemons, ${JETSTREAM ? 'output through JetStream' : 'NATS core only (--no-jetstream)'}, ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );

    // --trace: what crossed NATS during the run, by kind (heartbeats, agent events, requests,
    // replies, JetStream API calls), to tell where a slow run's time went.
    const traffic = new Map<string, number>();
    const tracer = process.argv.includes('--trace')
      ? await connect({ servers: nats.url })
      : undefined;
    tracer?.subscribe('>', {
      callback: (_e, m) => {
        const s = m.subject;
        const kind = s.startsWith('$JS.EVENT.')
          ? s.split('.').slice(0, 5).join('.')
          : s.startsWith('$JS.API.')
            ? s.split('.').slice(0, 4).join('.')
            : s.startsWith('_INBOX.')
              ? '_INBOX (replies)'
              : s.startsWith('lq.v1.events.')
                ? `events.${s.split('.').pop()}`
                : s
                    .replace(/^lq\.v1\.node\.[^.]+\./, 'node.*.')
                    .replace(/exec\.[^.]+\.output/, 'exec.*.output');
        traffic.set(kind, (traffic.get(kind) ?? 0) + 1);
      },
    });
    const loadBefore = loadavg();
    const cpu0 = {
      cp: cpuSeconds(cp.proc.pid),
      daemons: daemons.reduce((a, d) => a + cpuSeconds(d.proc.pid), 0),
      nats: cpuSeconds(nats.pid),
      children: childrenCpuSeconds(),
      pg: await pgCpuSeconds(),
      machine: machineCpuSeconds(),
    };
    const monoStart = process.hrtime.bigint() / 1000n;
    // The run's end is its ended_at, written by the control plane on this machine's clock: the
    // time is from the POST to it, whatever the poll's interval.
    const postAt = Date.now();
    const res = await adminFetch(`${cp.url}/api/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        target: { vm_ids: ids },
        argv: ['/bin/true'],
        max_concurrency: '100%',
      }),
    });
    const run = (await res.json()) as { id: string; status: string };
    if (res.status !== 202) {
      throw new Error(`run refused: ${JSON.stringify(run)}`);
    }
    // A status poll that fails (the replica busy, a reset connection) is tried again: only
    // the run's end, or no answer at all for a minute, ends the wait.
    let view:
      { status: string; summary: Record<string, number>; ended_at: string | null } | undefined;
    let pollErrors = 0;
    let lastAnswer = performance.now();
    // The newest run (this one) with its counts by state, not its 1,000 VMs one by one, every
    // POLL_MS: the poll is the bench's, and must cost the control plane and the database little
    // beside the run it watches (each one counts the run's targets by state).
    for (;;) {
      try {
        const r = await adminFetch(`${cp.url}/api/runs?limit=1`);
        const page = (await r.json()) as { runs?: Array<{ id: string } & typeof view> };
        const body = page.runs?.[0];
        if (r.status === 200 && body?.id === run.id && typeof body.status === 'string') {
          view = body;
          lastAnswer = performance.now();
          if (view.status !== 'running') {
            break;
          }
        } else {
          pollErrors++;
        }
      } catch {
        pollErrors++;
      }
      if (performance.now() - lastAnswer > 60_000) {
        throw new Error(`no answer about run ${run.id} for 60 s (${pollErrors} failed polls)`);
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    const endedAt = view.ended_at === null ? Number.NaN : Date.parse(view.ended_at);
    if (!Number.isFinite(endedAt)) {
      throw new Error(`run ${run.id} ended ${view.status} without an ended_at`);
    }
    const seconds = (endedAt - postAt) / 1000;
    if (process.env.LQ_PROFILE_DIR) {
      // The run's window on the monotonic clock V8's CPU profiles use, to read only the run.
      log(`run window (monotonic µs) ${monoStart} ${process.hrtime.bigint() / 1000n}`);
    }
    const cpu = {
      cp: cpuSeconds(cp.proc.pid) - cpu0.cp,
      daemons: daemons.reduce((a, d) => a + cpuSeconds(d.proc.pid), 0) - cpu0.daemons,
      nats: cpuSeconds(nats.pid) - cpu0.nats,
      children: childrenCpuSeconds() - cpu0.children,
      pg: (await pgCpuSeconds()) - cpu0.pg,
      machine: machineCpuSeconds() - cpu0.machine,
    };
    const agents = cpu.children - cpu.cp - cpu.daemons - cpu.nats;
    const others = cpu.machine - cpu.children - cpu.pg;
    if (tracer) {
      await tracer.close();
      for (const [kind, n] of [...traffic].sort((a, b) => b[1] - a[1])) {
        log(`  NATS during the run: ${String(n).padStart(7)}  ${kind}`);
      }
    }
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    const rows = await c.query<{ kind: string; n: number; ids: number; dup: number }>(
      `SELECT kind, count(*)::int AS n, count(DISTINCT request_id)::int AS ids FROM audit_events
       WHERE operation = 'execute' AND request_id IN (SELECT id FROM executions WHERE run_id = $1)
       GROUP BY kind ORDER BY kind`,
      [run.id],
    );
    const orphans = await c.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM audit_events i
       WHERE i.kind = 'intent' AND i.operation = 'execute' AND i.params->>'run_id' = $1
         AND NOT EXISTS (SELECT 1 FROM audit_events o
                         WHERE o.kind = 'outcome' AND o.request_id = i.request_id)`,
      [run.id],
    );
    await c.end();
    const audited = Object.fromEntries(rows.rows.map((r) => [r.kind, r]));
    const intents = audited.intent?.n ?? 0;
    const outcomes = audited.outcome?.n ?? 0;
    const summary = JSON.stringify(view.summary);
    log(
      `fleet run of /bin/true over ${ids.length} VMs     ${seconds.toFixed(2)} s (${view.status}: ${summary}; ${pollErrors} status polls retried)   target ≤ 5 s for 1,000`,
    );
    // The machine is shared: the time depends on what else runs. The CPU the control plane spent
    // on the run does much less, and the machine's busy CPU says how much the others took.
    log(
      `CPU during the run                  control plane ${cpu.cp.toFixed(1)} s, ${daemons.length} node daemons ${cpu.daemons.toFixed(1)} s, agents ${agents.toFixed(1)} s, nats-server ${cpu.nats.toFixed(1)} s, PostgreSQL ${cpu.pg.toFixed(1)} s; the machine was busy ${cpu.machine.toFixed(1)} of ${(seconds * cpus().length).toFixed(1)} core-s, ${others.toFixed(1)} of them for other work   load ${loadBefore} before, ${loadavg()} after`,
    );
    log(
      `audit rows of the run               ${intents} intents, ${outcomes} outcomes (${audited.outcome?.ids ?? 0} request ids), ${orphans.rows[0]!.n} intents without an outcome   target exactly ${ids.length} each`,
    );
    const problems: string[] = [];
    if (view.status !== 'succeeded' || (view.summary.succeeded ?? 0) !== ids.length) {
      problems.push(`the run ended ${view.status} (${summary}), not ${ids.length} succeeded`);
    }
    if (intents !== ids.length || outcomes !== ids.length) {
      problems.push(`${intents} intents and ${outcomes} outcomes, not ${ids.length} each`);
    }
    if (orphans.rows[0]!.n !== 0) {
      problems.push(`${orphans.rows[0]!.n} intents of the run have no outcome`);
    }
    if (problems.length > 0) {
      throw new Error(problems.join('; '));
    }
  } finally {
    await cp.stop();
    await Promise.all(daemons.map((d) => d.stop()));
    await Promise.all(sims.map((s) => s.stop()));
    await nats.stop();
    await db.drop();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
