// Fleet run benchmark (issue 8, acceptance 6): one run of /bin/true over many simulated VMs
// (real guest agents) spread over 10 node daemons, at full concurrency; prints the total time
// and the audit rows it left. Target: 1,000 VMs in ≤ 5 s with exactly 1,000 executions audited.
// Exits non-zero when the run did not succeed on every VM or its audit rows do not match
// (one intent and one outcome per VM, no intent without an outcome); the time is printed.
// Run: npm run bench:fleet [-- --vms N] [-- --daemons D] [-- --per-process K]. A Node.js
// process is about 50 MiB, so 1,000 agent processes would need about 50 GiB: the simulated VMs
// share processes, K agents each (default: all of a node daemon's VMs in one; --per-process 1
// gives each its own). Each is still the real agent, on its own socket, running its own commands.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { freemem, tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
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
const log = (line: string) => process.stdout.write(`${line}\n`);

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
  const work = mkdtempSync(join(tmpdir(), 'lq-bench-fleet-'));
  const nats = await startNatsServer();
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
        }),
      );
      daemons.push(
        await startNodeDaemon({ nodeId: `node-${d}`, natsUrl: nats.url, channelDirs: [dir] }),
      );
    }
    const ids = sims.flatMap((s) => s.vms.map((v) => v.id));
    await waitForReadyVms(cp.url, ids.length, { timeoutMs: 600_000 });
    log(`LimiQuantix fleet benchmark (node ${process.version})`);
    log(
      `${ids.length} simulated VMs (${PER_PROCESS} agents per process) on ${daemons.length} node daemons ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );

    const started = performance.now();
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
    let view: { status: string; summary: Record<string, number> } | undefined;
    let pollErrors = 0;
    let lastAnswer = performance.now();
    for (;;) {
      try {
        const r = await adminFetch(`${cp.url}/api/runs/${run.id}`);
        const body = (await r.json()) as typeof view;
        if (r.status === 200 && body && typeof body.status === 'string') {
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
      await new Promise((r) => setTimeout(r, 50));
    }
    const seconds = (performance.now() - started) / 1000;
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
