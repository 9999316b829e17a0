// Telemetry history benchmark (issue 20, acceptance 4): 1,000 simulated VMs reporting every
// 10 s for a simulated day, recorded through the control plane's own recording code
// (TelemetryRecorder: the buffer, the batched upserts) with synthetic timestamps, then the
// dashboard's queries through the REST API of a real control plane process: one VM's 24 h
// series and the fleet summary, p50/p95 (target p95 ≤ 50 ms). Prints the storage per VM-day.
// Run: npm run bench:telemetry [-- --vms N] [-- --hours H] [-- --runs R]. Uses the machine's
// PostgreSQL (a fresh database, dropped at the end) and a nats-server. Prints figures; asserts
// nothing.
import 'reflect-metadata';
import { cpus, loadavg } from 'node:os';
import { create } from '@bufbuild/protobuf';
import { TelemetryReportSchema, VmTelemetrySchema, type VmTelemetry } from '@lq/proto';
import { parseControlPlaneEnv } from '../apps/control-plane/src/config/env.schema.js';
import { createDataSource } from '../apps/control-plane/src/database/data-source.js';
import { MetricsService } from '../apps/control-plane/src/metrics/metrics.service.js';
import { TelemetryMetrics } from '../apps/control-plane/src/telemetry/telemetry.metrics.js';
import { TelemetryRecorder } from '../apps/control-plane/src/telemetry/telemetry-recorder.js';
import { TelemetryHistoryService } from '../apps/control-plane/src/telemetry/telemetry-history.service.js';
import { TelemetryRepository } from '../apps/control-plane/src/telemetry/telemetry.repository.js';
import { startNatsServer } from '../test/support/nats-server.js';
import { createTestDatabase } from '../test/support/postgres.js';
import { adminFetch, startControlPlaneProcess } from '../test/support/control-plane-process.js';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const VMS = arg('--vms', 1000);
const HOURS = arg('--hours', 24);
const RUNS = arg('--runs', 200);
const INTERVAL_MS = 10_000;
/** Simulated time between flushes (the recorder's timer is not running: the bench drives it). */
const FLUSH_EVERY_MS = 10 * 60_000;
const log = (line: string) => process.stdout.write(`${line}\n`);

function p(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
}

const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;

/** One VM's report, reused: its figures and timestamp change in place between reports. */
function reportOf(i: number): VmTelemetry {
  return create(VmTelemetrySchema, {
    nodeId: `node-${i % 10}`,
    vmId: `vm-${i}`,
    timestamp: { seconds: 0n, nanos: 0 },
    report: create(TelemetryReportSchema, {
      cpuCount: 2,
      memory: { totalBytes: 4n * 1024n ** 3n },
      disks: [
        { mountPoint: '/', device: '/dev/vda1', fsType: 'ext4', totalBytes: 20n * 1024n ** 3n },
        { mountPoint: '/var', device: '/dev/vdb1', fsType: 'xfs', totalBytes: 50n * 1024n ** 3n },
      ],
      network: [
        { name: 'lo', rxBytes: 0n, txBytes: 0n },
        { name: 'eth0', rxBytes: 0n, txBytes: 0n },
      ],
    }),
  });
}

/** The figures of VM i at time t: a daily wave per VM, a few VMs busy and nearly full. */
function step(t: VmTelemetry, i: number, at: number): void {
  const r = t.report!;
  const phase = Math.sin((at / 86_400_000) * 2 * Math.PI + i);
  r.cpuPercent = Math.max(0, Math.min(100, 30 + 25 * phase + (i % 50 === 0 ? 40 : 0)));
  r.load1 = r.cpuPercent / 50;
  r.memory!.usedBytes = BigInt(Math.round((0.4 + 0.2 * phase) * 4 * 1024 ** 3));
  r.disks[0]!.usedBytes = BigInt(Math.round((0.5 + (i % 97) / 200) * 20 * 1024 ** 3));
  r.disks[1]!.usedBytes = BigInt(Math.round(0.3 * 50 * 1024 ** 3 + (at % 86_400_000) * 10));
  const eth = r.network[1]!;
  eth.rxBytes += BigInt(Math.round(INTERVAL_MS * (50 + (i % 20) * 10)));
  eth.txBytes += BigInt(Math.round(INTERVAL_MS * 20));
  t.timestamp!.seconds = BigInt(Math.floor(at / 1000));
  t.timestamp!.nanos = (at % 1000) * 1e6;
}

async function main(): Promise<void> {
  for (const [name, value, max] of [
    ['--vms', VMS, 100_000],
    ['--hours', HOURS, 24],
    ['--runs', RUNS, 100_000],
  ] as const) {
    if (!Number.isInteger(value) || value < 1 || value > max) {
      throw new Error(`${name} must be a whole number from 1 to ${max} (got ${value})`);
    }
  }
  const db = await createTestDatabase('lq_bench_telemetry');
  const ds = createDataSource(db.url);
  const nats = await startNatsServer();
  let cp: Awaited<ReturnType<typeof startControlPlaneProcess>> | undefined;
  try {
    await ds.initialize();
    await ds.runMigrations({ transaction: 'each' });
    log(
      `LimiQuantix telemetry history benchmark (node ${process.version}; PostgreSQL on this machine)`,
    );

    // The inventory: VMs on 10 nodes in 5 projects, with a latest report (full disks come from it).
    await ds.query(
      `INSERT INTO nodes (id, last_heartbeat_at) SELECT 'node-' || g, now() FROM generate_series(0, 9) g`,
    );
    await ds.query(
      `INSERT INTO vms (id, node_id, name, agent_state, agent_version, project_id, telemetry, telemetry_at)
       SELECT 'vm-' || g, 'node-' || (g % 10), 'vm ' || g,
              CASE WHEN g % 100 = 0 THEN 'disconnected' ELSE 'ready' END,
              CASE WHEN g % 3 = 0 THEN '0.3.0' ELSE '0.4.0' END, 'default',
              jsonb_build_object('cpuPercent', 30, 'disks', jsonb_build_array(
                jsonb_build_object('mountPoint', '/', 'totalBytes', '1000',
                                   'usedBytes', (500 + (g % 97) * 5)::text))),
              now()
       FROM generate_series(0, $1::int - 1) g`,
      [VMS],
    );

    // The control plane serving the REST API is started first (idle while the day is recorded):
    // a busy machine can take long to start one.
    cp = await startControlPlaneProcess({
      databaseUrl: db.url,
      natsUrl: nats.url,
      env: { LQ_AUDIT_CHECKPOINT_JETSTREAM: 'off' },
    });

    // 1. The simulated day, through the recorder (buffer → batched upserts).
    const config = parseControlPlaneEnv({ DATABASE_URL: db.url });
    const repo = new TelemetryRepository(ds);
    const recorder = new TelemetryRecorder(
      config,
      repo,
      new TelemetryMetrics(new MetricsService(), repo, config),
    );
    const reports = Array.from({ length: VMS }, (_, i) => reportOf(i));
    const end = Date.now();
    const start = end - HOURS * 3600_000;
    let recorded = 0;
    let refused = 0;
    let flushMs = 0;
    let flushes = 0;
    const began = performance.now();
    let nextFlush = start + FLUSH_EVERY_MS;
    for (let at = start; at <= end; at += INTERVAL_MS) {
      for (let i = 0; i < VMS; i += 1) {
        const t = reports[i]!;
        // Reports of one tick spread over the interval, as real agents' are.
        step(t, i, at + ((i * 7919) % INTERVAL_MS) - INTERVAL_MS);
        if (recorder.record(t, end)) {
          recorded += 1;
        } else {
          refused += 1;
        }
      }
      if (at >= nextFlush || at + INTERVAL_MS > end) {
        const f = performance.now();
        await recorder.flush();
        flushMs += performance.now() - f;
        flushes += 1;
        nextFlush += FLUSH_EVERY_MS;
      }
    }
    const elapsed = (performance.now() - began) / 1000;
    await ds.query('VACUUM ANALYZE telemetry_points');
    const [rows] = await ds.query<
      Array<{ fine: number; coarse: number; bytes: string; table: string; indexes: string }>
    >(
      `SELECT count(*) FILTER (WHERE resolution = 1)::int AS fine,
              count(*) FILTER (WHERE resolution = 2)::int AS coarse,
              pg_total_relation_size('telemetry_points')::text AS bytes,
              pg_relation_size('telemetry_points')::text AS table,
              pg_indexes_size('telemetry_points')::text AS indexes
       FROM telemetry_points`,
    );
    const bytes = Number(rows!.bytes);
    const vmDays = (VMS * HOURS) / 24;
    log(
      `recorded ${recorded.toLocaleString('en')} reports (${refused} refused) of ${VMS} VMs over ${HOURS} h in ${elapsed.toFixed(1)} s: ${flushes} flushes, ${(flushMs / 1000).toFixed(1)} s writing (${Math.round(recorded / elapsed).toLocaleString('en')} reports/s)`,
    );
    log(
      `points: ${rows!.fine.toLocaleString('en')} of 1 min, ${rows!.coarse.toLocaleString('en')} of 15 min; table ${mib(Number(rows!.table))} + indexes ${mib(Number(rows!.indexes))}`,
    );
    const perVmDay = bytes / vmDays;
    const perPoint = bytes / (rows!.fine + rows!.coarse);
    // Kept at the defaults: 1,440 one-minute points (24 h) and 2,880 fifteen-minute points (30 d).
    const steady = perPoint * (1440 + 30 * 96);
    log(
      `storage per VM-day: ${(perVmDay / 1024).toFixed(0)} KiB (${perPoint.toFixed(0)} B per point with indexes); at the default retentions a VM holds about ${(steady / 1024 / 1024).toFixed(2)} MiB, 1,000 VMs ${((steady * 1000) / 1024 ** 3).toFixed(2)} GiB`,
    );

    const plan = await ds.query<Array<{ 'QUERY PLAN': string }>>(
      `EXPLAIN SELECT * FROM telemetry_points p WHERE p.vm_id = 'vm-1' AND p.resolution = 1
         AND p.bucket >= now() - interval '24 hours' AND p.bucket < now() ORDER BY p.bucket`,
    );
    log(`24 h series plan: ${plan.map((l) => l['QUERY PLAN'].trim()).join(' / ')}`);

    // 2. The dashboard's queries: in this process, then through the control plane's REST API.
    // The latest reports "now", so the summary's top lists hold every VM (as they would live).
    const now = Date.now();
    for (let i = 0; i < VMS; i += 1) {
      step(reports[i]!, i, now - 1000);
      recorder.record(reports[i]!, now);
    }
    await recorder.flush();
    const timed = async (path: string) => {
      const t = performance.now();
      const res = await adminFetch(`${cp!.url}${path}`);
      const body = await res.text();
      const ms = performance.now() - t;
      if (res.status !== 200) {
        throw new Error(`${path}: ${res.status} ${body.slice(0, 300)}`);
      }
      return { ms, body };
    };
    const from = new Date(now - 24 * 3600_000).toISOString();
    const to = new Date(now).toISOString();
    // Warm up the connection pool and the plans.
    for (let i = 0; i < 10; i += 1) {
      await timed(`/api/vms/vm-${i}/telemetry?from=${from}&to=${to}`);
      await timed('/api/fleet/summary');
    }
    const line = (name: string, xs: number[], note: string) =>
      log(
        `${name.padEnd(44)} p50 ${p(xs, 0.5).toFixed(1)} ms   p95 ${p(xs, 0.95).toFixed(1)} ms   (n=${xs.length}; ${note})   target p95 ≤ 50 ms`,
      );
    // The same reads in this process (the service and its SQL, no HTTP).
    const history = new TelemetryHistoryService(config, repo);
    const direct: number[] = [];
    const directSummary: number[] = [];
    for (let r = 0; r < RUNS + 10; r += 1) {
      const t = performance.now();
      await history.series(`vm-${(r * 104_729) % VMS}`, { from, to }, now);
      if (r >= 10) {
        direct.push(performance.now() - t);
      }
    }
    for (let r = 0; r < Math.max(20, Math.floor(RUNS / 2)) + 5; r += 1) {
      const t = performance.now();
      await history.summary('all', { top: 10, diskPercent: 90 }, now);
      if (r >= 5) {
        directSummary.push(performance.now() - t);
      }
    }
    line('24 h series of one VM (service + SQL)', direct, 'in process');
    line('fleet summary (service + SQL)', directSummary, 'in process');

    const series: number[] = [];
    let points = 0;
    for (let r = 0; r < RUNS; r += 1) {
      const vm = (r * 7919) % VMS;
      const { ms, body } = await timed(`/api/vms/vm-${vm}/telemetry?from=${from}&to=${to}`);
      series.push(ms);
      points = (JSON.parse(body) as { points: unknown[] }).points.length;
    }
    const summary: number[] = [];
    let reporting = 0;
    for (let r = 0; r < Math.max(20, Math.floor(RUNS / 2)); r += 1) {
      const { ms, body } = await timed('/api/fleet/summary?top=10&disk_percent=90');
      summary.push(ms);
      reporting = (JSON.parse(body) as { reporting: number }).reporting;
    }
    line('GET /api/vms/:id/telemetry (24 h)', series, `${points} points each`);
    line('GET /api/fleet/summary', summary, `${reporting} of ${VMS} VMs reporting`);
    log(
      `  (HTTP times include authentication and JSON; load average ${loadavg()[0]!.toFixed(1)} on ${cpus().length} CPUs while this ran)`,
    );
  } finally {
    await cp?.stop();
    await ds.destroy().catch(() => undefined);
    await nats.stop();
    await db.drop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:telemetry failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
