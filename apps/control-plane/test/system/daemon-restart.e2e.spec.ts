// A node daemon killed and restarted under running asynchronous executions (issue 18 item 9):
// the old daemon took their replies with it, so the control plane must not wait for their full
// timeout. It sees the new daemon's start in its heartbeat, asks the agent (same agent, still
// running the command) again under the same execution id and reattaches to the command, or to
// its retained result; each execution ends once, with one outcome row. Real nats-server,
// PostgreSQL, node daemon and agents. How fast is printed, and measured by `npm run faults`.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { startOneNodeStack, type OneNodeStack } from '../../../../test/support/one-node-stack.js';
import { adminFetch } from '../../../../test/support/control-plane-process.js';
import {
  startNodeDaemon,
  type RunningNodeDaemon,
} from '../../../../test/support/node-daemon-process.js';

describe('a node daemon restart under running executions', () => {
  let stack: OneNodeStack;
  let restarted: RunningNodeDaemon | undefined;

  beforeAll(async () => {
    stack = await startOneNodeStack({ name: 'daemon_restart', vms: 2 });
  }, 120_000);

  afterAll(async () => {
    await restarted?.stop();
    await stack?.stop();
  });

  const start = async (vmId: string, body: Record<string, unknown>): Promise<string> => {
    const res = await adminFetch(`${stack.cp.url}/api/vms/${vmId}/executions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const view = (await res.json()) as { id: string };
    expect(res.status).toBe(202);
    return view.id;
  };
  const status = async (id: string) =>
    (await (await adminFetch(`${stack.cp.url}/api/executions/${id}`)).json()) as {
      status: string;
      exit_code: number | null;
    };

  it('should reattach its executions instead of waiting for their timeout', async () => {
    // Long enough to outlive the restart, far shorter than its timeout.
    const ids = await Promise.all(
      ['vm-1', 'vm-2'].map((vm) =>
        start(vm, { command: 'sleep 6; echo finished', timeout_seconds: 900 }),
      ),
    );
    for (const id of ids) {
      expect((await status(id)).status).toBe('running');
    }
    const killedAt = Date.now();
    stack.daemon.proc.kill('SIGKILL');
    restarted = await startNodeDaemon({
      nodeId: 'node-1',
      natsUrl: stack.nats.url,
      channelDirs: [stack.work],
    });
    const ended: Array<{ status: string; exit_code: number | null }> = [];
    for (const id of ids) {
      let view = await status(id);
      // Generous (a busy machine), yet far below the 900 s timeout the old code waited for.
      for (const deadline = Date.now() + 120_000; view.status === 'running';) {
        if (Date.now() > deadline) {
          throw new Error(`execution ${id} still running 120 s after its daemon restarted`);
        }
        await sleep(200);
        view = await status(id);
      }
      ended.push(view);
    }
    process.stderr.write(
      `[daemon-restart] executions ended ${Date.now() - killedAt} ms after the kill: ${ended.map((e) => e.status).join(', ')}\n`,
    );
    // The agents never went away: the commands ran to their end and were reattached.
    expect(ended).toEqual(
      [
        { status: 'succeeded', exit_code: 0 },
        { status: 'succeeded', exit_code: 0 },
      ].map((e) => expect.objectContaining(e)),
    );
    // One intent and one outcome each.
    const c = new pg.Client({ connectionString: stack.db.url });
    await c.connect();
    try {
      const rows = await c.query<{ kind: string; n: number }>(
        `SELECT kind, count(*)::int AS n FROM audit_events WHERE request_id = ANY($1::uuid[])
         GROUP BY kind ORDER BY kind`,
        [ids],
      );
      expect(rows.rows).toEqual([
        { kind: 'intent', n: 2 },
        { kind: 'outcome', n: 2 },
      ]);
    } finally {
      await c.end();
    }
  }, 240_000);
});
