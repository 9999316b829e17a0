// Full-stack benchmark (issue 4, acceptance 6): REST → control plane → NATS → node daemon →
// agent ping latency (median/p99) and operations per second at concurrency 32.
// Run: npm run bench:control-plane [-- --quick]. Uses the machine's PostgreSQL (a fresh database).
// BENCH_CP_ENV='{"LQ_AUDIT_OUTCOME_WAIT_MS":"0"}' passes settings to the control plane (here:
// answer without waiting for the outcome row), LQ_PROFILE_DIR=<dir> writes CPU profiles.
// It also prints where a ping's time goes, each part measured in turn with the ping: an
// authenticated REST read with no guest call, the NATS → daemon → agent leg alone, and the
// rest (the audit intent and outcome rows, the guest-operation path of the control plane); what
// one durable PostgreSQL commit costs on this machine (a ping waits for two: its intent before
// the request leaves, its outcome before the answer), the REST/NATS ratio (issue 18: ≤ 2.5×) and
// the CPU the control plane and the node daemon spend per ping, each with the machine's load;
// and for the run at concurrency 32, the CPU each tier spent per ping, how busy the machine was,
// and the rate those costs allow on this machine's cores (issue 18: ≥ 2,000 ops/s).
import { signedRequestGuest } from '../test/support/signing.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import pg from 'pg';
import { join } from 'node:path';
import { startNatsServer } from '../test/support/nats-server.js';
import { startSimVms } from '../test/support/sim-vms.js';
import { startNodeDaemon } from '../test/support/node-daemon-process.js';
import { createTestDatabase } from '../test/support/postgres.js';
import { Agent, request } from 'node:http';
import { connect } from '@nats-io/transport-node';
import {
  TEST_ADMIN_TOKEN,
  startControlPlaneProcess,
} from '../test/support/control-plane-process.js';

const quick = process.argv.includes('--quick');

import { stats } from './stats.js';
import { cpuSeconds, machineCpuSeconds, ownCpuSeconds, pgBackendCpu, pgCpuBetween } from './cpu.js';

async function main(): Promise<void> {
  const loadAtStart = loadavg()[0]!.toFixed(2);
  const dir = mkdtempSync(join(tmpdir(), 'lq-bench-cp-'));
  const nats = await startNatsServer();
  const db = await createTestDatabase('lq_bench');
  const sim = await startSimVms({ dir, count: 4, config: { telemetry_interval_ms: 0 } });
  const daemon = await startNodeDaemon({ nodeId: 'bench', natsUrl: nats.url, channelDirs: [dir] });
  const cp = await startControlPlaneProcess({
    databaseUrl: db.url,
    natsUrl: nats.url,
    env: process.env.BENCH_CP_ENV
      ? (JSON.parse(process.env.BENCH_CP_ENV) as Record<string, string>)
      : {},
  });
  // node:http with keep-alive rather than fetch: on a 2-core machine the client shares the CPU
  // with everything measured, and fetch's streams cost several times more per request.
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const { hostname, port } = new URL(cp.url);
  const call = (method: 'GET' | 'POST', path: string) =>
    new Promise<void>((resolve, reject) => {
      const req = request(
        {
          agent,
          hostname,
          port,
          method,
          path,
          headers: {
            authorization: `Bearer ${TEST_ADMIN_TOKEN}`,
            ...(method === 'POST'
              ? { 'content-type': 'application/json', 'content-length': 2 }
              : {}),
          },
        },
        (res) => {
          res.resume();
          res.once('end', () =>
            res.statusCode === 200
              ? resolve()
              : reject(new Error(`${method} ${path}: HTTP ${res.statusCode}`)),
          );
        },
      );
      req.once('error', reject);
      req.end(method === 'POST' ? '{}' : undefined);
    });
  const ping = (vm: string) => call('POST', `/api/vms/${vm}/ping`);
  const nc = await connect({ servers: nats.url, noAsyncTraces: true });
  const pgc = new pg.Client({ connectionString: db.url });
  await pgc.connect();
  await pgc.query('CREATE TABLE bench_commit (x integer)');
  try {
    for (let i = 0; i < 200; i++) {
      const ok = await ping('vm-1').then(
        () => true,
        () => false,
      );
      if (ok) {
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    for (let i = 0; i < 500; i++) {
      await ping('vm-1');
    }
    const n = quick ? 1000 : 5000;
    const lat: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      await ping('vm-1');
      lat.push(performance.now() - t);
    }
    const s = stats(lat);
    // Where the time goes: each part in turn with a full ping, so all see the same machine.
    const parts = { ping: [] as number[], read: [] as number[], guest: [] as number[] };
    for (let i = 0; i < n / 2; i++) {
      let t = performance.now();
      await ping('vm-1');
      parts.ping.push(performance.now() - t);
      t = performance.now();
      await call('GET', '/api/auth/me');
      parts.read.push(performance.now() - t);
      t = performance.now();
      // Signed once, as the control plane signs a synchronous request (PROTOCOL.md §9).
      await signedRequestGuest(
        nc,
        'bench',
        'ping',
        { vmId: 'vm-1', timeoutMs: 2000, operation: { case: 'ping', value: {} } },
        undefined,
        { once: true },
      );
      parts.guest.push(performance.now() - t);
    }
    const [p, r, g] = [stats(parts.ping), stats(parts.read), stats(parts.guest)];
    // What one durable PostgreSQL commit costs here (a ping waits for two: intent, outcome),
    // and the CPU the control plane and the node daemon spend per ping (not wall time: on a
    // shared machine that is the figure a change moves).
    const commits: number[] = [];
    for (let i = 0; i < n / 5; i++) {
      const t = performance.now();
      await pgc.query('INSERT INTO bench_commit VALUES ($1)', [i]);
      commits.push(performance.now() - t);
    }
    const c = stats(commits);
    // What one audit row's commit costs: a ping's intent row inserted again, with a fresh seq
    // and request id, into a copy of audit_events with all its indexes (the chain's own table
    // takes no row but the writer's). More than a one-column commit: the row is wide and feeds
    // a dozen indexes; a ping waits for two.
    await pgc.query('CREATE TABLE bench_audit (LIKE audit_events INCLUDING ALL)');
    const intentSeq = (
      await pgc.query<{ seq: string }>(
        "SELECT seq FROM audit_events WHERE kind = 'intent' ORDER BY seq DESC LIMIT 1",
      )
    ).rows[0]!.seq;
    const auditRows: number[] = [];
    for (let i = 0; i < n / 5; i++) {
      const t = performance.now();
      await pgc.query(
        `INSERT INTO bench_audit (seq, at, kind, request_id, actor, auth_method, source_ip, vm_id,
           node_id, project_id, operation, params, status, exit_code, duration_ms, error,
           stdout_sha256, stdout_bytes, stderr_sha256, stderr_bytes, prev_hash, hash)
         SELECT $1, now(), kind, gen_random_uuid(), actor, auth_method, source_ip, vm_id,
           node_id, project_id, operation, params, status, exit_code, duration_ms, error,
           stdout_sha256, stdout_bytes, stderr_sha256, stderr_bytes, prev_hash, hash
         FROM audit_events WHERE seq = $2`,
        [i + 1, intentSeq],
      );
      auditRows.push(performance.now() - t);
    }
    const a = stats(auditRows);
    // PostgreSQL's side of a ping: the CPU of the backends serving the control plane (on the
    // same two cores as everything else).
    const cpu0 = [cpuSeconds(cp.proc.pid), cpuSeconds(daemon.proc.pid)];
    const pg0 = await pgBackendCpu(pgc);
    for (let i = 0; i < n; i++) {
      await ping('vm-1');
    }
    const cpu = [
      (cpuSeconds(cp.proc.pid) - cpu0[0]!) * 1000,
      (cpuSeconds(daemon.proc.pid) - cpu0[1]!) * 1000,
      pgCpuBetween(pg0, await pgBackendCpu(pgc)) * 1000,
    ];
    const total = quick ? 4000 : 20_000;
    // Where the CPU of the concurrent run goes, tier by tier, and how busy the machine was: with
    // every tier on the same cores, the rate is at most the cores over the CPU one ping costs
    // them all, whatever each tier's latency.
    const agentPids = () => sim.vms.map((v) => v.pid);
    const tierCpu = async () => ({
      cp: cpuSeconds(cp.proc.pid),
      daemon: cpuSeconds(daemon.proc.pid),
      agents: agentPids().reduce<number>((a, pid) => a + cpuSeconds(pid), 0),
      nats: cpuSeconds(nats.pid),
      client: ownCpuSeconds(),
      pg: await pgBackendCpu(pgc),
      machine: machineCpuSeconds(),
    });
    const before = await tierCpu();
    let sent = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: 32 }, async (_, w) => {
        while (sent < total) {
          sent++;
          await ping(`vm-${(w % 4) + 1}`);
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    const rate = total / seconds;
    const after = await tierCpu();
    const perOp = (a: number, b: number) => ((a - b) * 1000) / total;
    const tiers = {
      'control plane': perOp(after.cp, before.cp),
      PostgreSQL: (pgCpuBetween(before.pg, after.pg) * 1000) / total,
      'node daemon': perOp(after.daemon, before.daemon),
      agents: perOp(after.agents, before.agents),
      'nats-server': perOp(after.nats, before.nats),
      'this client': perOp(after.client, before.client),
    };
    const tiersMs = Object.values(tiers).reduce((a, b) => a + b, 0);
    const cores = cpus().length;
    const machineBusy = (after.machine - before.machine) / (seconds * cores);
    const guestLegMs = tiers['node daemon'] + tiers.agents + tiers['nats-server'];
    const loadAfterRate = loadavg()[0]!.toFixed(2);
    process.stdout.write(
      [
        `LimiQuantix full-stack benchmark (node ${process.version}; REST → control plane → NATS → node daemon → agent)   load ${loadAtStart}`,
        `REST ping latency, sequential     median ${s.median.toFixed(2)} ms  p99 ${s.p99.toFixed(2)} ms (n=${n})   target p50 ≤ 2 ms`,
        `REST pings at concurrency 32      ${Math.round(rate).toLocaleString('en')} ops/s (n=${total})   target ≥ 2,000 ops/s   load ${loadAfterRate}`,
        `where a ping's time goes (medians, measured in turn, n=${n / 2} each):`,
        `  REST ping                       ${p.median.toFixed(2)} ms`,
        `  authenticated REST call         ${r.median.toFixed(2)} ms   (GET /api/auth/me: HTTP and auth, nothing else)`,
        `  NATS → daemon → agent ping      ${g.median.toFixed(2)} ms   (a NATS request from this process)`,
        `  the rest                        ${(p.median - r.median - g.median).toFixed(2)} ms   (audit intent + outcome rows, guest-op path)`,
        `  one PostgreSQL commit           ${c.median.toFixed(2)} ms   (an INSERT from this process: a ping waits for two, intent and outcome)`,
        `  the rest less two commits       ${(p.median - r.median - g.median - 2 * c.median).toFixed(2)} ms   (the control plane's own guest-op path)`,
        `  one audit row committed         ${a.median.toFixed(2)} ms   (an intent row inserted into a copy of audit_events, indexes and all)`,
        `  the rest less two audit rows    ${(p.median - r.median - g.median - 2 * a.median).toFixed(2)} ms`,
        `REST ping / NATS ping (medians)   ${(p.median / g.median).toFixed(2)}×   target ≤ 2.5×   load ${loadavg()[0]!.toFixed(2)}`,
        `CPU per sequential ping           control plane ${(cpu[0]! / n).toFixed(3)} ms, node daemon ${(cpu[1]! / n).toFixed(3)} ms, PostgreSQL ${(cpu[2]! / n).toFixed(3)} ms (n=${n})`,
        `CPU per ping at concurrency 32    ${Object.entries(tiers)
          .map(([k, v]) => `${k} ${v.toFixed(3)}`)
          .join(', ')} ms; ${tiersMs.toFixed(2)} ms in all`,
        `  the machine was busy             ${(100 * machineBusy).toFixed(0)}% of its ${cores} cores (${((after.machine - before.machine) / seconds).toFixed(2)} core-s per s; the tiers above ${((tiersMs * rate) / 1000).toFixed(2)})`,
        `  rate these costs allow           ${Math.round((cores * 1000) / tiersMs).toLocaleString('en')} ops/s on ${cores} cores at most; 2,000 ops/s needs ≤ ${((cores * 1000) / 2000).toFixed(2)} ms in all (the guest leg alone, node daemon + agent + NATS, takes ${guestLegMs.toFixed(2)})`,
        `control plane peak RSS            ${(cp.memory().hwm / 1048576).toFixed(1)} MiB`,
      ].join('\n') + '\n',
    );
  } finally {
    await nc.close();
    await pgc.end();
    await cp.stop();
    await daemon.stop();
    await sim.stop();
    await nats.stop();
    await db.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
