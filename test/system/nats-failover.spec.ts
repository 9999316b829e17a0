// Issue 18 item 9: a synchronous request in flight through a NATS server that dies. The control
// plane's connection is on the server that dies, the node daemon's on another of the cluster (the
// control plane learns the others from the server's gossip). A synchronous execute carries its
// audit intent's request id, so once the connection has moved the control plane sends it again
// under that id and gets its answer (the agent attaches to the running command or returns its
// retained result): the caller gets the command's real answer, the command runs once, and its
// intent gets exactly one outcome; the next request is answered. (A request that could act twice
// if sent again fails at once with 503 instead: libs/host/test/integration/connection-lost.)
// The test asserts the outcome; the time is printed by npm run faults.
//
// The second case: the NATS server that dies is the node daemon's, with requests on their way to
// it (the server is stopped, so what the control plane sends it stays in its socket, then killed:
// lost for certain). The control plane's own connection never broke; it learns from the daemon's
// next heartbeat (nats_reconnects) that the daemon's side was lost and sends again, under their
// ids, the requests that are safe to send again: an asynchronous execution and a synchronous one
// end with their commands' real results instead of waiting for their timeouts.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { startNatsCluster, type RunningNatsCluster } from '../support/nats-cluster.js';
import { startSimVms, type SimVms } from '../support/sim-vms.js';
import { startNodeDaemon, type RunningNodeDaemon } from '../support/node-daemon-process.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import {
  adminFetch,
  startControlPlaneProcess,
  waitForReadyVms,
  type RunningControlPlane,
} from '../support/control-plane-process.js';

/**
 * A cluster of three nats-servers with the control plane on the first and the node daemon on
 * the second (each learns the others from the server's gossip), a database, one VM.
 */
function failoverStack(name: string) {
  let work = '';
  let nats: RunningNatsCluster | undefined;
  let db: TestDatabase | undefined;
  let sim: SimVms | undefined;
  let daemon: RunningNodeDaemon | undefined;
  let cp: RunningControlPlane | undefined;
  return {
    async start() {
      work = mkdtempSync(join(tmpdir(), `${name}-`));
      [nats, db] = await Promise.all([startNatsCluster(3), createTestDatabase(name)]);
      const [cpServer, daemonServer] = nats.members;
      sim = await startSimVms({ dir: work, count: 1, prefix: 'vm-' });
      cp = await startControlPlaneProcess({ databaseUrl: db.url, natsUrl: cpServer!.nats.url });
      daemon = await startNodeDaemon({
        nodeId: 'node-1',
        natsUrl: daemonServer!.nats.url,
        channelDirs: [work],
      });
      await waitForReadyVms(cp.url, 1, { timeoutMs: 90_000 });
      return { work, nats, cp, db };
    },
    async stop() {
      await cp?.stop();
      await daemon?.stop();
      await sim?.stop();
      await nats?.stop();
      await db?.drop();
      if (work) {
        rmSync(work, { recursive: true, force: true });
      }
    },
  };
}

describe('a synchronous request whose NATS server dies under it', () => {
  let work: string;
  let nats: RunningNatsCluster;
  let cp: RunningControlPlane;
  let db: TestDatabase;
  const stack = failoverStack('lq_failover');
  beforeAll(async () => {
    ({ work, nats, cp, db } = await stack.start());
  }, 180_000);
  afterAll(() => stack.stop());

  const execute = async (command: string, timeoutSeconds: number) => {
    const res = await adminFetch(`${cp.url}/api/vms/vm-1/execute`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ command, timeout_seconds: timeoutSeconds }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  it('should answer an interrupted synchronous execute with its result, run it once, write one outcome, and answer the next request', async () => {
    expect((await execute('true', 5)).status).toBe(200);
    const marker = `failover-${Date.now()}`;
    const ran = join(work, `${marker}.ran`);
    const pending = execute(`sleep 4; echo once >> ${ran}; echo ${marker}`, 60);
    await new Promise((r) => setTimeout(r, 1000));
    process.kill(nats.members[0]!.nats.pid, 'SIGKILL');
    const answer = await pending;
    expect(answer).toMatchObject({ status: 200, body: { exit_code: 0, stdout: `${marker}\n` } });
    expect(readFileSync(ran, 'utf8')).toBe('once\n');

    // Answered again once the connection is on another server.
    let next = await execute('echo again', 5);
    for (let i = 0; i < 50 && next.status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 200));
      next = await execute('echo again', 5);
    }
    expect(next).toMatchObject({ status: 200, body: { stdout: 'again\n' } });

    // The interrupted request's intent has exactly one outcome: the command's.
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      const { rows } = await c.query<{ status: string; exit_code: number; n: number }>(
        `SELECT o.status, o.exit_code, (SELECT count(*)::int FROM audit_events x
                                        WHERE x.kind = 'outcome' AND x.request_id = i.request_id) AS n
         FROM audit_events i JOIN audit_events o
           ON o.request_id = i.request_id AND o.kind = 'outcome'
         WHERE i.kind = 'intent' AND i.params->>'command' LIKE $1`,
        [`%${marker}%`],
      );
      expect(rows).toEqual([{ status: 'ok', exit_code: 0, n: 1 }]);
    } finally {
      await c.end();
    }
  }, 120_000);
});

describe("requests lost with the node daemon's NATS server", () => {
  let work: string;
  let nats: RunningNatsCluster;
  let cp: RunningControlPlane;
  const stack = failoverStack('lq_failover_node');
  beforeAll(async () => {
    ({ work, nats, cp } = await stack.start());
  }, 180_000);
  afterAll(() => stack.stop());

  const post = async (path: string, body: unknown) => {
    const res = await adminFetch(`${cp.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  it('should send again what was on its way to the daemon and end both executions with their results, each run once', async () => {
    expect(
      (await post('/api/vms/vm-1/execute', { command: 'true', timeout_seconds: 5 })).status,
    ).toBe(200);
    const marker = `node-failover-${Date.now()}`;
    const ranAsync = join(work, `${marker}.async`);
    const ranSync = join(work, `${marker}.sync`);
    const daemonServer = nats.members[1]!;
    // Stopped: what is routed to it from now on stays in its sockets, then dies with it.
    process.kill(daemonServer.nats.pid, 'SIGSTOP');
    let killed = false;
    try {
      const started = await post('/api/vms/vm-1/executions', {
        command: `echo once >> ${ranAsync}; echo ${marker}-async`,
        // Far beyond the wait below: the execution ends because it was sent again, not timed out.
        timeout_seconds: 600,
      });
      expect(started.status).toBe(202);
      const sync = post('/api/vms/vm-1/execute', {
        command: `echo once >> ${ranSync}; echo ${marker}-sync`,
        // Not sent again, it would end 504 after this.
        timeout_seconds: 60,
      });
      await new Promise((r) => setTimeout(r, 500));
      process.kill(daemonServer.nats.pid, 'SIGKILL');
      killed = true;

      expect(await sync).toMatchObject({ status: 200, body: { stdout: `${marker}-sync\n` } });
      let execution: Record<string, unknown> = {};
      for (const deadline = Date.now() + 90_000; Date.now() < deadline;) {
        const res = await adminFetch(`${cp.url}/api/executions/${started.body.id as string}`);
        execution = (await res.json()) as Record<string, unknown>;
        if (execution.status !== 'running' && execution.status !== 'pending') {
          break;
        }
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(execution).toMatchObject({ status: 'succeeded', exit_code: 0 });
      expect(readFileSync(ranAsync, 'utf8')).toBe('once\n');
      expect(readFileSync(ranSync, 'utf8')).toBe('once\n');
    } finally {
      if (!killed) {
        process.kill(daemonServer.nats.pid, 'SIGCONT');
      }
    }
  }, 200_000);
});
