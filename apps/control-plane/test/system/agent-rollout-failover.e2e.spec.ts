// A rollout survives the replica driving it (issue 19): two control-plane replicas on one
// PostgreSQL and nats-server, six simulated VMs whose agents really replace their executable, a
// rollout started on replica 1 and replica 1 killed (SIGKILL) after the first VMs are done.
// Replica 2 takes the rollout over once its lease has run out and finishes it: every VM ends
// ready on B, no VM is updated twice, and every update has its audited intent and outcome.
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { AgentRolloutView, VmView } from '@lq/api';
import { startOneNodeStack, type OneNodeStack } from '../../../../test/support/one-node-stack.js';
import {
  TEST_ADMIN_TOKEN,
  startControlPlaneProcess,
  type RunningControlPlane,
} from '../../../../test/support/control-plane-process.js';
import { AGENT_BUNDLE } from '../../../../test/support/sim-vms.js';
import {
  NODE_TARGET,
  buildAgentBundle,
  killProcessesMentioning,
  releaseKey,
  writeRelease,
} from '../../../../test/support/agent-release.js';

const B = '0.2.0';
const VMS = 6;

describe('an agent rollout when its driving replica dies', () => {
  let stack: OneNodeStack;
  let second: RunningControlPlane;
  const workDirs = new Map<string, string>();

  async function get<T>(url: string, path: string): Promise<T> {
    const res = await fetch(`${url}${path}`, {
      headers: { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
    });
    return (await res.json()) as T;
  }

  async function until<T>(what: string, fn: () => Promise<T | undefined>, ms: number): Promise<T> {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      const v = await fn().catch(() => undefined);
      if (v !== undefined) {
        return v;
      }
      await sleep(250);
    }
    throw new Error(`${what}: not within ${ms} ms`);
  }

  beforeAll(async () => {
    const key = releaseKey();
    const downloads = `${process.env.TMPDIR ?? '/tmp'}/lq-rollout-fo-${process.pid}`;
    mkdirSync(downloads, { recursive: true });
    const cpEnv = {
      LQ_AGENT_DOWNLOADS_DIR: downloads,
      LQ_AGENT_RELEASE_KEYS: key.publicKey,
      LQ_AGENT_UPDATE_POLL_MS: '200',
      LQ_AGENT_UPDATE_READY_GRACE_MS: '5000',
      LQ_AGENT_ROLLOUT_LEASE_MS: '3000',
    };
    stack = await startOneNodeStack({
      name: 'rolloutfo',
      vms: VMS,
      cpEnv,
      readyTimeoutMs: 120_000,
      simConfig: ({ id, workDir }) => {
        workDirs.set(id, workDir);
        return {
          update: {
            executable: join(workDir, 'agent.cjs'),
            state_dir: join(workDir, 'update'),
            ready_timeout_ms: 15_000,
            release_keys: [key.publicKey],
          },
        };
      },
    });
    for (const dir of workDirs.values()) {
      copyFileSync(AGENT_BUNDLE, join(dir, 'agent.cjs'));
    }
    const build = join(stack.work, 'b.cjs');
    await buildAgentBundle(B, build);
    writeRelease(
      join(downloads, B),
      B,
      [{ target: NODE_TARGET, from: build, name: 'agent.cjs' }],
      key,
    );
    second = await startControlPlaneProcess({
      databaseUrl: stack.db.url,
      natsUrl: stack.nats.url,
      env: cpEnv,
    });
    // Both replicas offer B (each reads the downloads directory).
    for (const url of [stack.cp.url, second.url]) {
      await until(
        'release B offered',
        async () =>
          (await get<{ latest: string }>(url, '/api/agent/releases')).latest === B
            ? true
            : undefined,
        60_000,
      );
    }
  }, 300_000);

  afterAll(async () => {
    await second?.stop();
    await stack?.stop();
    if (stack) {
      killProcessesMentioning(stack.work);
    }
  });

  it('should be finished by the other replica, every VM ready on B and audited once', async () => {
    const ids = Array.from({ length: VMS }, (_, i) => `vm-${i + 1}`);
    const res = await fetch(`${stack.cp.url}/api/agent/rollouts`, {
      method: 'POST',
      headers: {
        Authorization: `Bearer ${TEST_ADMIN_TOKEN}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({
        version: B,
        target: { vm_ids: ids },
        canary: 0,
        max_concurrency: 1,
        max_errors: 0,
      }),
    });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as AgentRolloutView;
    // Replica 1 drives it; once two VMs are done it dies without a word.
    await until(
      'two VMs ready',
      async () => {
        const r = await get<AgentRolloutView>(second.url, `/api/agent/rollouts/${id}`);
        return r.vms.filter((v) => v.state === 'ready').length >= 2 ? r : undefined;
      },
      120_000,
    );
    stack.cp.proc.kill('SIGKILL');
    const done = await until(
      'the rollout ends on replica 2',
      async () => {
        const r = await get<AgentRolloutView>(second.url, `/api/agent/rollouts/${id}`);
        return r.status === 'running' ? undefined : r;
      },
      180_000,
    );
    expect(done).toMatchObject({ status: 'succeeded', errors: 0 });
    expect(done.vms.map((v) => [v.vm_id, v.state])).toEqual(ids.map((v) => [v, 'ready']));
    for (const vmId of ids) {
      const vm = await get<VmView>(second.url, `/api/vms/${vmId}`);
      expect([vmId, vm.agent_version]).toEqual([vmId, B]);
    }
    // One update per VM (none sent twice, as its agent would refuse B over B), each with its
    // intent and one outcome, the one replica 1 left in flight settled by replica 2.
    const audit = await get<{
      events: Array<{
        kind: string;
        vm_id: string | null;
        request_id: string;
        status: string | null;
        params: Record<string, unknown>;
      }>;
    }>(second.url, '/api/audit/events?operation=agent.update&limit=200');
    for (const vmId of ids) {
      const mine = audit.events.filter((e) => e.vm_id === vmId && e.params.rollout_id === id);
      const outcomes = mine.filter((e) => e.kind === 'outcome');
      expect([vmId, outcomes.map((e) => e.status)]).toEqual([vmId, ['ready']]);
      const intents = mine.filter((e) => e.kind === 'intent');
      expect(intents.map((e) => e.request_id)).toContain(outcomes[0]!.request_id);
    }
    const rollout = await get<{ events: Array<{ kind: string; status: string | null }> }>(
      second.url,
      '/api/audit/events?operation=agent.rollout&limit=10',
    );
    expect(rollout.events).toContainEqual(
      expect.objectContaining({ kind: 'outcome', status: 'succeeded' }),
    );
  }, 420_000);
});
