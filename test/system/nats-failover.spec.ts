// Issue 18 item 9: a synchronous request in flight through a NATS server that dies. The control
// plane's connection is on the server that dies, the node daemon's on another of the cluster (the
// control plane learns the others from the server's gossip). A request that could act twice if
// sent again (a synchronous execute) is answered 503 naming the cause as soon as the connection
// moves, not at its timeout, with exactly one audit outcome; the next request is answered. The
// test asserts the outcome; the time is printed by npm run faults.
import { mkdtempSync, rmSync } from 'node:fs';
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

  it('should answer 503 naming the lost server, write one outcome, and answer the next request', async () => {
    expect((await execute('true', 5)).status).toBe(200);
    const marker = `failover-${Date.now()}`;
    const pending = execute(`sleep 4; echo ${marker}`, 60);
    await new Promise((r) => setTimeout(r, 1000));
    process.kill(nats.members[0]!.nats.pid, 'SIGKILL');
    const answer = await pending;
    expect(answer.status).toBe(503);
    expect(answer.body.code).toBe('NODE_UNAVAILABLE');
    expect(answer.body.message).toMatch(/went away while it was in flight/);

    // Answered again once the connection is on another server.
    let next = await execute('echo again', 5);
    for (let i = 0; i < 50 && next.status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 200));
      next = await execute('echo again', 5);
    }
    expect(next).toMatchObject({ status: 200, body: { stdout: 'again\n' } });

    // The interrupted request's intent has exactly one outcome, which names the cause.
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      const { rows } = await c.query<{ status: string; error: string; n: number }>(
        `SELECT o.status, o.error, (SELECT count(*)::int FROM audit_events x
                                    WHERE x.kind = 'outcome' AND x.request_id = i.request_id) AS n
         FROM audit_events i JOIN audit_events o
           ON o.request_id = i.request_id AND o.kind = 'outcome'
         WHERE i.kind = 'intent' AND i.params->>'command' LIKE $1`,
        [`%${marker}%`],
      );
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ status: 'NODE_UNAVAILABLE', n: 1 });
      expect(rows[0]!.error).toMatch(/went away while it was in flight/);
    } finally {
      await c.end();
    }
  }, 120_000);
});
