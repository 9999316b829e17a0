// The whole platform on one node for system tests: a nats-server of the test's own, a fresh
// database, simulated VMs vm-1..vm-N (real agents), the control plane and node daemon node-1,
// with every VM ready in the inventory. stop() takes it all down and removes the work dir; a
// start that fails stops what it started.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNatsServer, type RunningNats } from './nats-server.js';
import { startSimVms, type SimVms, type SimVmsOptions } from './sim-vms.js';
import { startNodeDaemon, type RunningNodeDaemon } from './node-daemon-process.js';
import { createTestDatabase, type TestDatabase } from './postgres.js';
import {
  startControlPlaneProcess,
  waitForReadyVms,
  type RunningControlPlane,
} from './control-plane-process.js';

export interface OneNodeStack {
  /** The channel directory (VM sockets, and each VM's work dir under .sim/). */
  work: string;
  nats: RunningNats;
  db: TestDatabase;
  sim: SimVms;
  cp: RunningControlPlane;
  daemon: RunningNodeDaemon;
  stop(): Promise<void>;
}

export async function startOneNodeStack(options: {
  /** Names the work dir and the database (lq-<name>-, lq_<name>_). */
  name: string;
  vms: number;
  /** Control-plane environment on top of the test defaults. */
  cpEnv?: Record<string, string>;
  readyTimeoutMs?: number;
  /** Agent config merged into every simulated VM's (see startSimVms). */
  simConfig?: SimVmsOptions['config'];
  /** Start nats-server with JetStream (the execution-output stream, audit checkpoints). */
  jetstream?: boolean;
}): Promise<OneNodeStack> {
  const work = mkdtempSync(join(tmpdir(), `lq-${options.name}-`));
  const parts: Partial<Omit<OneNodeStack, 'work' | 'stop'>> = {};
  const stop = async () => {
    await parts.cp?.stop();
    await parts.daemon?.stop();
    await parts.sim?.stop();
    await parts.nats?.stop();
    await parts.db?.drop();
    rmSync(work, { recursive: true, force: true });
  };
  try {
    [parts.nats, parts.db] = await Promise.all([
      startNatsServer({ jetstream: options.jetstream ?? false }),
      createTestDatabase(`lq_${options.name}`),
    ]);
    parts.sim = await startSimVms({
      dir: work,
      count: options.vms,
      prefix: 'vm-',
      config: options.simConfig,
    });
    parts.cp = await startControlPlaneProcess({
      databaseUrl: parts.db.url,
      natsUrl: parts.nats.url,
      env: options.cpEnv ?? {},
    });
    parts.daemon = await startNodeDaemon({
      nodeId: 'node-1',
      natsUrl: parts.nats.url,
      channelDirs: [work],
    });
    await waitForReadyVms(parts.cp.url, options.vms, { timeoutMs: options.readyTimeoutMs });
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
  return { ...(parts as Omit<OneNodeStack, 'work' | 'stop'>), work, stop };
}
