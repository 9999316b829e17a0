// Agent lifecycle through the whole stack (issue 19, acceptance 2-4): releases found in the
// downloads directory, POST /api/vms/:id/agent/update with its audit trail, refusals in the guest,
// a rollout over 30 simulated VMs whose error budget stops it. Real nats-server, PostgreSQL,
// control plane, node daemon, and one agent process per VM that really replaces its executable
// (the Node bundle: update.executable in each VM's work dir) and is re-executed by its watchdog.
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type {
  AgentReleaseListView,
  AgentRolloutView,
  AgentUpdateView,
  AuditEventView,
  VmView,
} from '@lq/api';
import { startOneNodeStack, type OneNodeStack } from '../../../../test/support/one-node-stack.js';
import { TEST_ADMIN_TOKEN } from '../../../../test/support/control-plane-process.js';
import { AGENT_BUNDLE } from '../../../../test/support/sim-vms.js';
import {
  NODE_TARGET,
  buildAgentBundle,
  killProcessesMentioning,
  releaseKey,
  writeRelease,
  type ReleaseKey,
} from '../../../../test/support/agent-release.js';

const LQCTL = join(process.cwd(), 'dist/lqctl/lqctl.cjs');
const A = '0.1.0'; // the running bundle's (package.json)
const B = '0.2.0';
const VMS = 32; // vm-1..vm-30 roll out; vm-31 and vm-32 are updated on their own
const BROKEN = ['vm-12', 'vm-13', 'vm-14'];

interface Reply<T = Record<string, unknown>> {
  status: number;
  body: T;
}

describe('agent updates through the stack', () => {
  let stack: OneNodeStack;
  let key: ReleaseKey;
  /** Trusted by the control plane, not by the agents: its releases are refused in the guest. */
  let controlPlaneOnly: ReleaseKey;
  const tokens: Record<string, string> = { admin: TEST_ADMIN_TOKEN };
  const workDirs = new Map<string, string>();

  async function call<T = Record<string, unknown>>(
    who: string,
    method: string,
    path: string,
    body?: unknown,
  ): Promise<Reply<T>> {
    const res = await fetch(`${stack.cp.url}${path}`, {
      method,
      headers: {
        Authorization: `Bearer ${tokens[who]}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as T };
  }

  async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 90_000): Promise<T> {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      const v = await fn();
      if (v !== undefined) {
        return v;
      }
      await sleep(300);
    }
    throw new Error(`${what}: not within ${ms} ms`);
  }

  const vm = async (id: string) => (await call<VmView>('admin', 'GET', `/api/vms/${id}`)).body;

  beforeAll(async () => {
    key = releaseKey();
    controlPlaneOnly = releaseKey();
    const downloads = `${process.env.TMPDIR ?? '/tmp'}/lq-agent-downloads-${process.pid}`;
    stack = await startOneNodeStack({
      name: 'agentupd',
      vms: VMS,
      cpEnv: {
        LQ_AGENT_DOWNLOADS_DIR: (mkdirSync(downloads, { recursive: true }), downloads),
        LQ_AGENT_RELEASE_KEYS: `${key.publicKey},${controlPlaneOnly.publicKey}`,
        LQ_AGENT_UPDATE_POLL_MS: '300',
        LQ_AGENT_UPDATE_CHUNK_TIMEOUT_MS: '8000',
      },
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
    // Each VM's installed agent is its own file (the bundle it runs), so each can replace it.
    for (const dir of workDirs.values()) {
      copyFileSync(AGENT_BUNDLE, join(dir, 'agent.cjs'));
    }
    for (const id of BROKEN) {
      writeFileSync(join(workDirs.get(id)!, 'BREAK'), '');
    }
    // Release B: the agent reporting 0.2.0, built to exit at start where its folder holds BREAK
    // (a build broken on some guests); found in the downloads directory like any release.
    const build = join(stack.work, 'b.cjs');
    await buildAgentBundle(B, build, {
      banner:
        "if (require('fs').existsSync(require('path').join(__dirname, 'BREAK'))) { process.stderr.write('broken on this guest\\n'); process.exit(3); }",
    });
    writeRelease(
      join(downloads, B),
      B,
      [{ target: NODE_TARGET, from: build, name: 'agent.cjs' }],
      key,
    );
    // A release the control plane's key does not vouch for is listed but not offered.
    const stranger = releaseKey();
    writeRelease(
      join(downloads, '0.3.0'),
      '0.3.0',
      [{ target: NODE_TARGET, from: build, name: 'agent.cjs' }],
      stranger,
    );
    writeRelease(
      join(downloads, '0.1.5'),
      '0.1.5',
      [{ target: NODE_TARGET, from: build, name: 'agent.cjs' }],
      controlPlaneOnly,
    );
    // A viewer may read the fleet but not update it.
    expect((await call('admin', 'POST', '/api/users', { username: 'viewer' })).status).toBe(201);
    await call('admin', 'POST', '/api/role-bindings', { user: 'viewer', role: 'viewer' });
    tokens.viewer = (await call('admin', 'POST', '/api/users/viewer/api-keys', {})).body
      .token as string;
  }, 300_000);

  afterAll(async () => {
    await stack?.stop();
    // Agents re-executed by a watchdog run in sessions of their own.
    if (stack) {
      killProcessesMentioning(stack.work);
    }
  });

  it('should list the releases, offering only those whose signature verifies', async () => {
    // The catalog re-reads the downloads directory every few seconds (an import at once).
    const r = await until('release B offered', async () => {
      const got = await call<AgentReleaseListView>('admin', 'GET', '/api/agent/releases');
      return got.body.latest === B ? got : undefined;
    });
    expect(r.status).toBe(200);
    const byVersion = Object.fromEntries(r.body.releases.map((x) => [x.version, x]));
    expect(byVersion[B]).toMatchObject({ updatable: true });
    expect(byVersion[B]!.artifacts[0]).toMatchObject({ target: NODE_TARGET, verified: true });
    expect(byVersion['0.3.0']).toMatchObject({ updatable: false });
  });

  it('should show version, target and outdated for each VM, and count the fleet by version', async () => {
    const one = await vm('vm-31');
    expect(one).toMatchObject({
      agent_version: A,
      agent_target: NODE_TARGET,
      agent_outdated: true,
    });
    const fleet = await call<{
      versions: Array<{ version: string; vms: number; outdated: boolean }>;
    }>('admin', 'GET', '/api/agent/versions');
    expect(fleet.body.versions).toContainEqual(
      expect.objectContaining({ version: A, vms: VMS, outdated: true }),
    );
    const metrics = await (await fetch(`${stack.cp.url}/metrics`)).text();
    expect(metrics).toMatch(
      new RegExp(`lq_agent_version_info\\{version="${A}",target="${NODE_TARGET}"\\} ${VMS}`),
    );
  });

  it('should refuse the update to a viewer (403, audited) and a release it does not offer', async () => {
    const denied = await call('viewer', 'POST', '/api/vms/vm-31/agent/update', { version: B });
    expect(denied.status).toBe(403);
    expect(denied.body.permission).toBe('guest.agent.update');
    const denials = await call<{ events: Array<{ actor: string; operation: string }> }>(
      'admin',
      'GET',
      '/api/audit/events?kind=denied&limit=50',
    );
    expect(denials.body.events).toContainEqual(
      expect.objectContaining({
        actor: 'viewer',
        operation: 'POST /api/vms/:id/agent/update',
        params: { permission: 'guest.agent.update' },
      }),
    );
    const unsigned = await call('admin', 'POST', '/api/vms/vm-31/agent/update', {
      version: '0.3.0',
    });
    expect(unsigned.status).toBe(400);
    expect(unsigned.body.message).toMatch(/0.3.0 has no verified signed executables/);
    expect((await vm('vm-31')).agent_version).toBe(A);
  });

  it('should update one VM from A to B and audit intent and outcome with both versions', async () => {
    const r = await call<AgentUpdateView>('admin', 'POST', '/api/vms/vm-31/agent/update', {
      version: B,
    });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      vm_id: 'vm-31',
      state: 'ready',
      from_version: A,
      to_version: B,
      version: B,
    });
    const after = await until('vm-31 reports B', async () => {
      const v = await vm('vm-31');
      return v.agent_version === B && v.agent_last_update?.result === 'ok' ? v : undefined;
    });
    expect(after.agent_outdated).toBe(false);
    const rows = await call<{
      events: Array<{ kind: string; status: string | null; params: Record<string, unknown> }>;
    }>('admin', 'GET', '/api/audit/events?operation=agent.update&vm_id=vm-31&limit=20');
    const intent = rows.body.events.find((e) => e.kind === 'intent');
    const outcome = rows.body.events.find((e) => e.kind === 'outcome');
    expect(intent?.params).toMatchObject({ from_version: A, to_version: B, target: NODE_TARGET });
    expect(outcome).toMatchObject({
      status: 'ready',
      params: expect.objectContaining({ from_version: A, to_version: B, version: B }),
    });
  }, 120_000);

  it('should refuse in the guest a release signed by a key the agent does not trust', async () => {
    const r = await call('admin', 'POST', '/api/vms/vm-31/agent/update', {
      version: '0.1.5',
      allow_downgrade: true,
    });
    expect(r.status).toBe(403);
    expect(r.body.message).toMatch(
      /signature does not verify with any of the 1 trusted release key/,
    );
    const v = await vm('vm-31');
    expect(v.agent_version).toBe(B);
    expect(v.agent_state).toBe('ready');
    const rows = await call<{
      events: Array<{
        kind: string;
        status: string | null;
        error: string | null;
        params: Record<string, unknown>;
      }>;
    }>(
      'admin',
      'GET',
      '/api/audit/events?operation=agent.update&vm_id=vm-31&kind=outcome&limit=20',
    );
    expect(rows.body.events).toContainEqual(
      expect.objectContaining({
        status: 'AGENT_ERROR:NOT_ALLOWED',
        error: expect.stringMatching(/signature does not verify/),
        // A failed update's outcome still names the update (a rollout's: the rollout too).
        params: expect.objectContaining({ to_version: '0.1.5', update_id: expect.any(String) }),
      }),
    );
  }, 120_000);

  it('should fail an update whose agent stops answering with 504 naming the chunk and its setting, then update it once it answers', async () => {
    await stack.sim.kill('vm-32', 'SIGSTOP');
    let stalled: Reply;
    try {
      stalled = await call('admin', 'POST', '/api/vms/vm-32/agent/update', { version: B });
    } finally {
      await stack.sim.kill('vm-32', 'SIGCONT');
    }
    expect(stalled.status).toBe(504);
    expect(stalled.body.message).toMatch(
      /^the chunk at byte 0 of \d+ \(LQ_AGENT_UPDATE_CHUNK_TIMEOUT_MS\): /,
    );
    const rows = await call<{ events: AuditEventView[] }>(
      'admin',
      'GET',
      '/api/audit/events?operation=agent.update&vm_id=vm-32&limit=20',
    );
    expect(rows.body.events.find((e) => e.kind === 'outcome')?.error).toMatch(
      /the chunk at byte 0 of \d+ \(LQ_AGENT_UPDATE_CHUNK_TIMEOUT_MS\)/,
    );
    expect((await vm('vm-32')).agent_version).toBe(A);
    // Answering again, the agent takes the next update whole (a new update drops the staging
    // the stalled one may have left).
    const r = await call<AgentUpdateView>('admin', 'POST', '/api/vms/vm-32/agent/update', {
      version: B,
    });
    expect(r.body).toMatchObject({ vm_id: 'vm-32', state: 'ready', version: B });
    expect(r.status).toBe(200);
  }, 120_000);

  it('should import a signed release folder with lqctl, and refuse a tampered one', async () => {
    // Asynchronous, so this process's HTTP connections stay served while lqctl runs.
    const lqctl = (dir: string) =>
      new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
        execFile(
          process.execPath,
          [
            LQCTL,
            '--server',
            stack.cp.url,
            '--token',
            TEST_ADMIN_TOKEN,
            'agent',
            'release',
            'import',
            dir,
          ],
          (err, stdout, stderr) =>
            resolve({ status: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
        );
      });
    const good = join(stack.work, 'import-0.2.1');
    writeRelease(
      good,
      '0.2.1',
      [{ target: NODE_TARGET, from: join(stack.work, 'b.cjs'), name: 'agent.cjs' }],
      key,
    );
    const ok = await lqctl(good);
    if (ok.status !== 0) {
      throw new Error(`lqctl agent release import exited ${ok.status}: ${ok.stderr}`);
    }
    expect(ok.stdout).toMatch(/release 0.2.1 published: node-/);
    const listed = await call<AgentReleaseListView>('admin', 'GET', '/api/agent/releases');
    expect(listed.body.releases.find((r) => r.version === '0.2.1')).toMatchObject({
      updatable: true,
    });
    const bad = join(stack.work, 'import-0.2.2');
    writeRelease(
      bad,
      '0.2.2',
      [{ target: NODE_TARGET, from: join(stack.work, 'b.cjs'), name: 'agent.cjs' }],
      key,
    );
    writeFileSync(join(bad, 'agent.cjs'), 'tampered');
    const refused = await lqctl(bad);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/agent.cjs: sha256 [0-9a-f]{64} and size 8 received/);
    const audit = await call<{ events: Array<{ kind: string; params: Record<string, unknown> }> }>(
      'admin',
      'GET',
      '/api/audit/events?operation=agent.release.import&limit=10',
    );
    expect(audit.body.events).toContainEqual(
      expect.objectContaining({
        kind: 'admin',
        params: expect.objectContaining({ version: '0.2.1' }),
      }),
    );
  }, 120_000);

  it('should stop a rollout over 30 VMs after its error budget, leaving the rest as they were', async () => {
    const ids = Array.from({ length: 30 }, (_, i) => `vm-${i + 1}`);
    const started = await call<AgentRolloutView>('admin', 'POST', '/api/agent/rollouts', {
      version: B,
      target: { vm_ids: ids },
      canary: 2,
      max_concurrency: 5,
      max_errors: 1,
    });
    expect(started.status).toBe(202);
    const done = await until(
      'rollout ends',
      async () => {
        const r = await call<AgentRolloutView>(
          'admin',
          'GET',
          `/api/agent/rollouts/${started.body.id}`,
        );
        return r.body.status === 'running' ? undefined : r.body;
      },
      240_000,
    );
    expect(done.status).toBe('stopped');
    expect(done.errors).toBeGreaterThan(1);
    const steps = Object.fromEntries(done.vms.map((v) => [v.vm_id, v]));
    // Sorted ids: vm-1 and vm-10 are the canaries; vm-11..vm-15 the first wave.
    expect(steps['vm-1']).toMatchObject({ canary: true, state: 'ready', to_version: B });
    expect(steps['vm-10']).toMatchObject({ canary: true, state: 'ready' });
    const rolledBack = done.vms.filter((v) => v.state === 'rolled_back').map((v) => v.vm_id);
    expect(rolledBack.length).toBeGreaterThan(1);
    expect(BROKEN).toEqual(expect.arrayContaining(rolledBack));
    for (const id of rolledBack) {
      expect(steps[id]!.error).toMatch(/exited with code 3 before it said AgentReady/);
    }
    const skipped = done.vms.filter((v) => v.state === 'skipped').map((v) => v.vm_id);
    expect(skipped.length).toBeGreaterThan(10);
    // The VMs the rollout did not reach, and those rolled back, still run A.
    for (const id of [...skipped, ...rolledBack]) {
      expect((await vm(id)).agent_version).toBe(A);
    }
    expect((await vm('vm-1')).agent_version).toBe(B);
    // Every VM the rollout reached has its own audited update with the rollout id. An answer
    // waits for its outcome row up to LQ_AUDIT_OUTCOME_WAIT_MS and then lets the write go on in
    // the background, so on a loaded machine the last outcome may land just after the rollout
    // ends: wait for it (bounded), and fail if it never comes.
    const reached = done.vms.filter((v) => !['skipped', 'queued'].includes(v.state));
    let seen = '';
    const kindsByVm = await until(
      'an intent and an outcome for every VM the rollout reached',
      async () => {
        const audit = await call<{
          events: Array<{ kind: string; vm_id: string | null; params: Record<string, unknown> }>;
        }>('admin', 'GET', '/api/audit/events?operation=agent.update&limit=500');
        const kinds = reached.map((v) =>
          audit.body.events
            .filter((e) => e.vm_id === v.vm_id && e.params.rollout_id === done.id)
            .map((e) => e.kind)
            .sort(),
        );
        seen = JSON.stringify(reached.map((v, i) => [v.vm_id, v.state, v.error, kinds[i]]));
        return kinds.every((k) => k.length >= 2) ? kinds : undefined;
      },
      30_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; steps and audit kinds: ${seen}`);
    });
    for (const kinds of kindsByVm) {
      expect(kinds).toEqual(['intent', 'outcome']);
    }
    const rollout = await call<{ events: Array<{ kind: string; status: string | null }> }>(
      'admin',
      'GET',
      '/api/audit/events?operation=agent.rollout&limit=10',
    );
    expect(rollout.body.events).toContainEqual(
      expect.objectContaining({ kind: 'outcome', status: 'stopped' }),
    );
    expect(
      readFileSync(join(workDirs.get('vm-12')!, 'agent.cjs')).equals(readFileSync(AGENT_BUNDLE)),
    ).toBe(true);
  }, 300_000);
});
