// Issue 18 item 9: a synchronous request in flight through a NATS server that dies. The control
// plane's connection is on the server that dies, the node daemon's on another of the cluster (the
// control plane learns the others from the server's gossip). A synchronous execute carries its
// audit intent's request id, so once the connection has moved the control plane sends it again
// under that id and gets its answer (the agent attaches to the running command or returns its
// retained result): the caller gets the command's real answer, the command runs once, and its
// intent gets exactly one outcome; the next request is answered. (A request that could act twice
// if sent again fails at once with 503 instead: libs/host/test/integration/connection-lost.)
// The test asserts the outcome; the time is printed by npm run faults.
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

describe('a synchronous request whose NATS server dies under it', () => {
  let work: string;
  let nats: RunningNatsCluster;
  let db: TestDatabase;
  let sim: SimVms;
  let daemon: RunningNodeDaemon;
  let cp: RunningControlPlane;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'lq-failover-'));
    [nats, db] = await Promise.all([startNatsCluster(3), createTestDatabase('lq_failover')]);
    const [cpServer, daemonServer] = nats.members;
    sim = await startSimVms({ dir: work, count: 1, prefix: 'vm-' });
    cp = await startControlPlaneProcess({ databaseUrl: db.url, natsUrl: cpServer!.nats.url });
    daemon = await startNodeDaemon({
      nodeId: 'node-1',
      natsUrl: daemonServer!.nats.url,
      channelDirs: [work],
    });
    await waitForReadyVms(cp.url, 1, { timeoutMs: 90_000 });
  }, 180_000);

  afterAll(async () => {
    await cp?.stop();
    await daemon?.stop();
    await sim?.stop();
    await nats?.stop();
    await db?.drop();
    rmSync(work, { recursive: true, force: true });
  });

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
