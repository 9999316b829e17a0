// Fault scenarios against real processes (issue 18 item 11): a PostgreSQL cluster of its own, a
// cluster of three nats-servers, two control-plane replicas, a node daemon and simulated VMs
// (real agents), one of them behind a channel proxy that injects garbage. Each fault is injected
// while executions run and a steady load of synchronous requests goes on; the table says how long
// until every VM answered again, how many requests were lost (a synchronous request not answered
// 200 within its retries, an execution or run that never ended, or one that should have ended
// with its real result and did not), and, after recovery, the audit intents left without an
// outcome (must be 0) and the rows verified. Exits non-zero on any loss or orphan intent.
// Times are printed, never asserted.
// Run: npm run faults
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { FRAME_HEADER_BYTES, FRAME_MAGIC, crc32 } from '@lq/proto';
import { startNatsCluster } from '../test/support/nats-cluster.js';
import { startSimVms } from '../test/support/sim-vms.js';
import { startChannelProxy } from '../test/support/channel-proxy.js';
import { startNodeDaemon, type RunningNodeDaemon } from '../test/support/node-daemon-process.js';
import { startPgCluster } from '../test/support/pg-cluster.js';
import {
  adminFetch,
  startControlPlaneProcess,
  waitForReadyVms,
  type RunningControlPlane,
} from '../test/support/control-plane-process.js';

/** VMs vm-1..vm-4 on the daemon's channel directory, vm-5 behind the garbage proxy. */
const DIRECT_VMS = 4;
const VMS = DIRECT_VMS + 1;
const GARBAGE_VM = `vm-${VMS}`;
/** How long a synchronous request of the load is retried before it counts as lost. */
const RETRY_WINDOW_MS = 20_000;
const log = (line: string) => process.stdout.write(`${line}\n`);

interface Row {
  fault: string;
  recoverMs: number;
  lost: number;
  sent: number;
  orphans: number;
  verified: string;
}

/** A frame header that passes its own checksum and claims `length` bytes of payload. */
function frameHeader(length: number): Buffer {
  const h = Buffer.alloc(FRAME_HEADER_BYTES);
  FRAME_MAGIC.copy(h, 0);
  h[4] = 1;
  h.writeUInt32BE(length >>> 0, 8);
  h.writeUInt32BE(0, 12);
  h.writeUInt32BE(crc32(h.subarray(0, 16)), 16);
  return h;
}

async function main(): Promise<void> {
  const started = Date.now();
  const work = mkdtempSync(join(tmpdir(), 'lq-faults-'));
  const proxied = mkdtempSync(join(tmpdir(), 'lq-faults-proxied-'));
  const cluster = await startPgCluster();
  const nats = await startNatsCluster(3);
  const dbUrl = cluster.url();
  const spoolDir = (i: number) => join(work, `spool-${i}`);
  // Short leases: a dead replica's executions are adopted within seconds.
  const cpEnv = (i: number) => ({
    LQ_AUDIT_SPOOL_DIR: spoolDir(i),
    LQ_EXEC_LOST_GRACE_MS: '20000',
    LQ_LEASE_MS: '3000',
  });
  const sim = await startSimVms({ dir: work, count: DIRECT_VMS, prefix: 'vm-' });
  // The garbage VM: its agent on a socket of its own, the daemon sees the proxy as vm-5.
  const garbageSim = await startSimVms({ dir: proxied, count: 1, prefix: 'g-' });
  const proxy = await startChannelProxy({
    listenPath: join(work, `${GARBAGE_VM}.sock`),
    targetPath: join(proxied, 'g-1.sock'),
  });
  const startCp = (i: number) =>
    startControlPlaneProcess({
      databaseUrl: dbUrl,
      natsUrl: nats.url,
      env: cpEnv(i),
      // A shared 2-core machine under load has taken over a minute to start one.
      readyTimeoutMs: 180_000,
    });
  // cps[0] serves the load and the probes; cps[1] is the replica that gets killed.
  const cps: RunningControlPlane[] = [await startCp(0), await startCp(1)];
  const startDaemon = () =>
    startNodeDaemon({ nodeId: 'node-1', natsUrl: nats.url, channelDirs: [work] });
  let daemon: RunningNodeDaemon = await startDaemon();
  const rows: Row[] = [];
  try {
    await waitForReadyVms(cps[0]!.url, VMS, { timeoutMs: 120_000 });
    const api = async (cp: RunningControlPlane, method: string, path: string, body?: unknown) => {
      const res = await adminFetch(`${cp.url}${path}`, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(15_000),
      });
      return {
        status: res.status,
        body: (await res.json().catch(() => ({}))) as Record<string, unknown>,
      };
    };
    const front = () => cps[0]!;
    /** The answers other than 200 of this scenario, by status and error code (for a loss). */
    let failures = new Map<string, number>();
    const ping = (vm: string) =>
      api(front(), 'POST', `/api/vms/${vm}/execute`, { argv: ['/bin/true'], timeout_seconds: 5 })
        .then((x) => {
          if (x.status !== 200) {
            const key = `${x.status} ${JSON.stringify(x.body.code ?? '')}`;
            failures.set(key, (failures.get(key) ?? 0) + 1);
          }
          return x.status;
        })
        .catch((e: unknown) => {
          const key = `no answer (${(e as Error).name})`;
          failures.set(key, (failures.get(key) ?? 0) + 1);
          return 599;
        });
    /** A sync ping of every VM; the VMs that did not answer 200. */
    const probe = async () =>
      (await Promise.all(Array.from({ length: VMS }, (_, i) => ping(`vm-${i + 1}`)))).filter(
        (s) => s !== 200,
      ).length;
    /** Time from `t0` until one probe round is answered by every VM. */
    const recovered = async (t0: number) => {
      for (const deadline = Date.now() + 120_000; Date.now() < deadline; await sleep(100)) {
        if ((await probe().catch(() => VMS)) === 0) {
          return Date.now() - t0;
        }
      }
      return -1;
    };
    /**
     * A steady load of synchronous requests (one per VM every 250 ms) until stopped; each one
     * retried until answered 200 or RETRY_WINDOW_MS has passed (then it is lost).
     */
    const load = () => {
      let running = true;
      let sent = 0;
      let lost = 0;
      const one = async (vm: string) => {
        sent++;
        for (const deadline = Date.now() + RETRY_WINDOW_MS; ; await sleep(250)) {
          if ((await ping(vm)) === 200) {
            return;
          }
          if (Date.now() > deadline) {
            lost++;
            return;
          }
        }
      };
      const loops = Array.from({ length: VMS }, async (_, i) => {
        const inflight: Array<Promise<void>> = [];
        while (running) {
          inflight.push(one(`vm-${i + 1}`));
          await sleep(250);
        }
        await Promise.all(inflight);
      });
      return async () => {
        running = false;
        await Promise.all(loops);
        return { sent, lost };
      };
    };
    const startExec = async (vm: string, command: string, cp = front()) => {
      const r = await api(cp, 'POST', `/api/vms/${vm}/executions`, {
        command,
        timeout_seconds: 600,
      });
      if (r.status !== 202) {
        throw new Error(`execution on ${vm} refused: ${r.status} ${JSON.stringify(r.body)}`);
      }
      return `executions/${r.body.id as string}`;
    };
    /**
     * Executions and runs (`executions/<id>`, `runs/<id>`) not ended within the deadline, or,
     * with `succeed`, not ended `succeeded` (each is a lost request).
     */
    const unended = async (paths: string[], succeed: boolean, deadlineMs = 120_000) => {
      const left = new Set(paths);
      let wrong = 0;
      for (const deadline = Date.now() + deadlineMs; left.size > 0 && Date.now() < deadline;) {
        for (const path of [...left]) {
          const r = await api(front(), 'GET', `/api/${path}`).catch(() => undefined);
          const status = r?.status === 200 ? (r.body.status as string) : 'running';
          if (status !== 'running' && status !== 'pending') {
            left.delete(path);
            if (succeed && status !== 'succeeded') {
              log(`  ${path} ended ${status}: ${JSON.stringify(r?.body.error ?? '')}`);
              wrong++;
            }
          }
        }
        await sleep(200);
      }
      return left.size + wrong;
    };
    const audit = async () => {
      const c = new pg.Client({ connectionString: dbUrl });
      await c.connect();
      try {
        const orphans = await c.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM audit_events i WHERE i.kind = 'intent'
             AND NOT EXISTS (SELECT 1 FROM audit_events o
                             WHERE o.kind = 'outcome' AND o.request_id = i.request_id)`,
        );
        return orphans.rows[0]!.n;
      } finally {
        await c.end();
      }
    };
    const verify = async () => {
      const r = await api(front(), 'GET', '/api/audit/verify');
      return r.body.ok === true
        ? `${r.body.rows as number} ok`
        : `BROKEN ${JSON.stringify(r.body)}`;
    };
    /** Waits until no intent lacks its outcome (the writer may still be replaying). */
    const settledOrphans = async () => {
      let n = await audit();
      for (const deadline = Date.now() + 60_000; n > 0 && Date.now() < deadline; await sleep(500)) {
        n = await audit();
      }
      return n;
    };
    /**
     * One fault: the load runs from before the injection until every VM answers again; the
     * executions and runs `inject` started must end (with `succeed`, succeeded).
     */
    const scenario = async (
      fault: string,
      inject: () => Promise<string[]>,
      options: { succeed?: boolean; after?: () => Promise<void> } = {},
    ) => {
      const began = Date.now();
      failures = new Map();
      const stopLoad = load();
      const t0 = Date.now();
      const paths = await inject();
      const recoverMs = await recovered(t0);
      const { sent, lost: loadLost } = await stopLoad();
      const lost =
        (recoverMs < 0 ? VMS : 0) + loadLost + (await unended(paths, options.succeed ?? false));
      await options.after?.();
      rows.push({
        fault,
        recoverMs,
        lost,
        sent: sent + paths.length,
        orphans: await settledOrphans(),
        verified: await verify(),
      });
      log(`  done in ${((Date.now() - began) / 1000).toFixed(0)} s: ${fault}`);
      const row = rows[rows.length - 1]!;
      if (row.lost > 0 || row.orphans > 0) {
        // What the failed answers were, and what the serving replica logged last: the why.
        log(`    answers other than 200: ${JSON.stringify(Object.fromEntries(failures))}`);
        const tail = front().output().trim().split('\n').slice(-25);
        log(`    last lines of the serving replica's log:\n      ${tail.join('\n      ')}`);
      }
    };

    await scenario('kill -9 an agent mid-exec', async () => {
      const id = await startExec('vm-1', 'echo started; sleep 30');
      await sleep(500);
      await sim.kill('vm-1', 'SIGKILL');
      await sim.restart('vm-1');
      return [id];
    });

    await scenario('kill -9 the node daemon mid-exec', async () => {
      const ids = await Promise.all(['vm-2', 'vm-3'].map((vm) => startExec(vm, 'sleep 5')));
      daemon.proc.kill('SIGKILL');
      daemon = await startDaemon();
      return ids;
    });

    await scenario('stop and start PostgreSQL mid-exec', async () => {
      const ids = await Promise.all(['vm-1', 'vm-4'].map((vm) => startExec(vm, 'sleep 3')));
      cluster.stop();
      // The executions end while the database is away: their outcomes go to the spool.
      await sleep(6000);
      cluster.start();
      return ids;
    });

    // The replica that started them dies; the other adopts them and finishes them with the
    // agents' real results (a run's remaining VM included): lost unless `succeeded`.
    await scenario(
      'kill -9 a control-plane replica mid-exec',
      async () => {
        const doomed = cps[1]!;
        const ids = await Promise.all(
          ['vm-1', 'vm-2'].map((vm) => startExec(vm, 'sleep 4; echo done', doomed)),
        );
        const run = await api(doomed, 'POST', '/api/runs', {
          target: { vm_ids: ['vm-3', 'vm-4'] },
          command: 'sleep 3',
          max_concurrency: 1,
        });
        if (run.status !== 202) {
          throw new Error(`run refused: ${run.status} ${JSON.stringify(run.body)}`);
        }
        await sleep(500);
        doomed.proc.kill('SIGKILL');
        return [...ids, `runs/${run.body.id as string}`];
      },
      {
        succeed: true,
        after: async () => {
          cps[1] = await startCp(1);
        },
      },
    );

    // One server of the three dies: the one the node daemon uses, so its subscription has to
    // move; the clients reconnect to the others. Restarted once every VM answers again.
    let victim = nats.members[0]!;
    await scenario(
      'kill -9 one nats-server of a 3-server cluster',
      async () => {
        for (const m of nats.members) {
          if ((await nats.clientsOf(m)).some((n) => n.startsWith('lq-node-daemon'))) {
            victim = m;
          }
        }
        const ids = await Promise.all(['vm-3', 'vm-4'].map((vm) => startExec(vm, 'sleep 3')));
        process.kill(victim.nats.pid, 'SIGKILL');
        return ids;
      },
      {
        succeed: true,
        after: async () => {
          await victim.nats.restart();
          for (const deadline = Date.now() + 30_000; !(await nats.meshFormed()); await sleep(100)) {
            if (Date.now() > deadline) {
              throw new Error(`${victim.name} did not rejoin the cluster`);
            }
          }
        },
      },
    );

    // Random bytes and frame headers claiming huge payloads, both ways on vm-5's channel, with
    // an execution running there: the decoders skip to the next valid frame (or the daemon
    // reconnects), the execution ends with its result and the VM answers again.
    await scenario(
      'garbage frames on an agent channel',
      async () => {
        await proxy.waitForConnection();
        const id = await startExec(GARBAGE_VM, 'sleep 2; echo survived');
        await sleep(300);
        for (let i = 0; i < 20; i++) {
          const junk = [
            randomBytes(1 + Math.floor(Math.random() * 4096)),
            frameHeader(0xfffffff0),
            frameHeader(64 * 1024 * 1024),
            Buffer.concat([FRAME_MAGIC, randomBytes(64)]),
          ][i % 4]!;
          proxy.injectToAgent(junk);
          proxy.injectToHost(junk);
          await sleep(25);
        }
        return [id];
      },
      { succeed: true },
    );
  } finally {
    await Promise.all(cps.map((cp) => cp.stop()));
    await daemon.stop();
    await proxy.close();
    await garbageSim.stop();
    await sim.stop();
    await nats.stop();
    cluster.destroy();
    rmSync(work, { recursive: true, force: true });
    rmSync(proxied, { recursive: true, force: true });
  }
  log('LimiQuantix fault scenarios (real PostgreSQL, 3 nats-servers, 2 replicas, daemon, agents)');
  log(
    `${'fault'.padEnd(46)} ${'recover'.padStart(9)} ${'lost'.padStart(5)} ${'of'.padStart(6)} ${'orphans'.padStart(8)}  rows verified`,
  );
  for (const r of rows) {
    log(
      `${r.fault.padEnd(46)} ${(r.recoverMs < 0 ? 'never' : `${(r.recoverMs / 1000).toFixed(1)} s`).padStart(9)} ${String(r.lost).padStart(5)} ${String(r.sent).padStart(6)} ${String(r.orphans).padStart(8)}  ${r.verified}`,
    );
  }
  log(`(${((Date.now() - started) / 1000).toFixed(0)} s in all)`);
  const bad = rows.filter((r) => r.lost > 0 || r.orphans > 0 || !r.verified.endsWith('ok'));
  if (bad.length > 0) {
    throw new Error(`loss after: ${bad.map((r) => r.fault).join('; ')}`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`faults failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
