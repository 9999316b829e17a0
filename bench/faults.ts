// Fault scenarios against real processes (issue 18 item 11): a PostgreSQL cluster of its own,
// a nats-server, the control plane, a node daemon and simulated VMs (real agents). Each fault
// is injected while executions run; the table says how long until requests were answered again,
// how many requests were lost (no answer, or a running execution that never ended), and, after
// recovery, the audit intents left without an outcome (must be 0) and the rows verified.
// Exits non-zero on any loss or orphan intent. Times are printed, never asserted.
// Run: npm run faults
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { startNatsServer } from '../test/support/nats-server.js';
import { startSimVms } from '../test/support/sim-vms.js';
import { startNodeDaemon, type RunningNodeDaemon } from '../test/support/node-daemon-process.js';
import { startPgCluster } from '../test/support/pg-cluster.js';
import {
  adminFetch,
  startControlPlaneProcess,
  waitForReadyVms,
  type RunningControlPlane,
} from '../test/support/control-plane-process.js';

const VMS = 4;
const log = (line: string) => process.stdout.write(`${line}\n`);

interface Row {
  fault: string;
  recoverMs: number;
  lost: number;
  orphans: number;
  verified: string;
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'lq-faults-'));
  const cluster = await startPgCluster();
  const nats = await startNatsServer();
  const dbUrl = cluster.url();
  const spoolDir = join(work, 'spool');
  const cpEnv = { LQ_AUDIT_SPOOL_DIR: spoolDir, LQ_EXEC_LOST_GRACE_MS: '20000' };
  const sim = await startSimVms({ dir: work, count: VMS, prefix: 'vm-' });
  let cp: RunningControlPlane = await startControlPlaneProcess({
    databaseUrl: dbUrl,
    natsUrl: nats.url,
    env: cpEnv,
  });
  let daemon: RunningNodeDaemon = await startNodeDaemon({
    nodeId: 'node-1',
    natsUrl: nats.url,
    channelDirs: [work],
  });
  const rows: Row[] = [];
  try {
    await waitForReadyVms(cp.url, VMS, { timeoutMs: 120_000 });
    const api = async (method: string, path: string, body?: unknown) => {
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
    /** A sync ping of every VM; the VMs that did not answer 200. */
    const probe = async () => {
      const r = await Promise.all(
        Array.from({ length: VMS }, (_, i) =>
          api('POST', `/api/vms/vm-${i + 1}/execute`, { argv: ['/bin/true'], timeout_seconds: 5 })
            .then((x) => x.status)
            .catch(() => 599),
        ),
      );
      return r.filter((s) => s !== 200).length;
    };
    /** Time from `t0` until one probe round is answered by every VM. */
    const recovered = async (t0: number) => {
      for (const deadline = Date.now() + 120_000; Date.now() < deadline; await sleep(100)) {
        if ((await probe().catch(() => VMS)) === 0) {
          return Date.now() - t0;
        }
      }
      return -1;
    };
    const startExec = async (vm: string, command: string) => {
      const r = await api('POST', `/api/vms/${vm}/executions`, { command, timeout_seconds: 600 });
      if (r.status !== 202) {
        throw new Error(`execution on ${vm} refused: ${r.status} ${JSON.stringify(r.body)}`);
      }
      return r.body.id as string;
    };
    /** Executions not ended within the deadline (each is a lost request). */
    const unended = async (ids: string[], deadlineMs = 120_000) => {
      const left = new Set(ids);
      for (const deadline = Date.now() + deadlineMs; left.size > 0 && Date.now() < deadline;) {
        for (const id of [...left]) {
          const r = await api('GET', `/api/executions/${id}`).catch(() => undefined);
          if (r?.status === 200 && r.body.status !== 'running' && r.body.status !== 'pending') {
            left.delete(id);
          }
        }
        await sleep(200);
      }
      return left.size;
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
      const r = await api('GET', '/api/audit/verify');
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
    const scenario = async (fault: string, inject: () => Promise<string[]>) => {
      const t0 = Date.now();
      const ids = await inject();
      const recoverMs = await recovered(t0);
      const lost = (recoverMs < 0 ? VMS : 0) + (await unended(ids));
      rows.push({
        fault,
        recoverMs,
        lost,
        orphans: await settledOrphans(),
        verified: await verify(),
      });
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
      daemon = await startNodeDaemon({ nodeId: 'node-1', natsUrl: nats.url, channelDirs: [work] });
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

    // Its in-flight async executions are not re-adopted by another replica yet (they end at
    // the sweep, past their timeout): this scenario has none in flight.
    await scenario('kill -9 the control plane, restarted (idle)', async () => {
      cp.proc.kill('SIGKILL');
      cp = await startControlPlaneProcess({ databaseUrl: dbUrl, natsUrl: nats.url, env: cpEnv });
      return [];
    });

    await scenario('kill -9 nats-server, restarted on its port', async () => {
      const ids = await Promise.all(['vm-3'].map((vm) => startExec(vm, 'sleep 3')));
      process.kill(nats.pid, 'SIGKILL');
      await nats.restart();
      return ids;
    });
  } finally {
    await cp.stop();
    await daemon.stop();
    await sim.stop();
    await nats.stop();
    cluster.destroy();
    rmSync(work, { recursive: true, force: true });
  }
  log('LimiQuantix fault scenarios (real PostgreSQL, nats-server, node daemon, agents)');
  log(
    `${'fault'.padEnd(44)} ${'recover'.padStart(9)} ${'lost'.padStart(5)} ${'orphans'.padStart(8)}  rows verified`,
  );
  for (const r of rows) {
    log(
      `${r.fault.padEnd(44)} ${(r.recoverMs < 0 ? 'never' : `${(r.recoverMs / 1000).toFixed(1)} s`).padStart(9)} ${String(r.lost).padStart(5)} ${String(r.orphans).padStart(8)}  ${r.verified}`,
    );
  }
  const bad = rows.filter((r) => r.lost > 0 || r.orphans > 0 || !r.verified.endsWith('ok'));
  if (bad.length > 0) {
    throw new Error(`loss after: ${bad.map((r) => r.fault).join('; ')}`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`faults failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
