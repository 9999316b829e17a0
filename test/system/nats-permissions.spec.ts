// NATS hardening (issue 5): deploy/nats gives the control plane and each node daemon their own
// NATS user with least permissions. These tests render that config, run a real nats-server with
// it, and show what each role's credentials may and may not do, down to a real node daemon
// serving a VM through its own credentials.
import { signedRequestGuest, signedCallGuest, testFilePort } from '../support/signing.js';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  AuthorizationError,
  PermissionViolationError,
  connect,
  type NatsConnection,
  type Subscription,
} from '@nats-io/transport-node';
import {
  AgentEventSchema,
  AgentState,
  ExecOutputEventSchema,
  ExecuteRequestSchema,
  GuestRequestSchema,
  NodeHeartbeatSchema,
  OutputStream,
  VmTelemetrySchema,
  subjects,
} from '@lq/proto';
import { readGuestFile, writeGuestFile } from '@lq/host';
import {
  CHECKED_IN_NODE_IDS,
  CONTROL_PLANE_PASSWORD_VAR,
  CONTROL_PLANE_USER,
  RenderError,
  nodePasswordVar,
  nodeUser,
  renderAuthConf,
  DEFAULT_RESPONSES_MAX,
  renderServerConf,
} from '../../deploy/nats/render-nats-conf.mjs';
import {
  adminFetch,
  startControlPlaneProcess,
  waitForReadyVms,
  type RunningControlPlane,
} from '../support/control-plane-process.js';
import { startNatsServer, type RunningNats } from '../support/nats-server.js';
import { startNodeDaemon, type RunningNodeDaemon } from '../support/node-daemon-process.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import { REPO_ROOT } from '../support/service-process.js';
import { startSimVms, type SimVms } from '../support/sim-vms.js';

// Test passwords: plain words, as nats-server reads them from its environment.
const PASSWORDS = {
  controlPlane: 'cp-test-secret',
  'node-a': 'node-a-test-secret',
  'node-b': 'node-b-test-secret',
  'node-c': 'node-c-test-secret',
};
const QUEUE_GROUP = 'lq-control-plane';

/** Polls `probe` until it returns something, or fails naming what it waited for. */
async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error(`no ${what} within ${timeoutMs} ms`);
    }
    await sleep(20);
  }
}

interface Received {
  subject: string;
  data: Uint8Array;
}

/** A connection as one role, with the errors the server reported to it (e.g. -ERR). */
class Client {
  readonly errors: Error[] = [];
  private constructor(readonly nc: NatsConnection) {
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'error') {
          this.errors.push(s.error);
        }
      }
    })();
  }

  static async connect(url: string, user: string, pass: string): Promise<Client> {
    return new Client(await connect({ servers: url, user, pass, name: `test-${user}` }));
  }

  /** Resolves with the permissions violation the server reports for `subject`. */
  violation(subject: string, from = 0): Promise<PermissionViolationError> {
    return until(`permissions violation for ${subject}`, () =>
      this.errors
        .slice(from)
        .find(
          (e): e is PermissionViolationError =>
            e instanceof PermissionViolationError && e.subject === subject,
        ),
    );
  }

  /** Publishes and expects the server to refuse it. */
  async publishDenied(subject: string, data: Uint8Array = new Uint8Array([1])): Promise<void> {
    const from = this.errors.length;
    this.nc.publish(subject, data);
    const err = await this.violation(subject, from);
    expect(err.operation).toBe('publish');
    expect(err.message).toMatch(/Permissions Violation for Publish/);
  }

  /** Subscribes and expects the server to refuse it (the subscription closes with the error). */
  async subscribeDenied(subject: string, queue?: string): Promise<void> {
    const sub = this.nc.subscribe(subject, { queue, callback: () => undefined });
    const closedWith = await sub.closed;
    expect(closedWith).toBeInstanceOf(PermissionViolationError);
    const err = closedWith as PermissionViolationError;
    expect(err.operation).toBe('subscription');
    expect(err.subject).toBe(subject);
  }

  /** Collects what arrives on `subject` (subscription acknowledged by the server). */
  async collect(subject: string, queue?: string): Promise<Collector> {
    const collector = new Collector(this.nc, subject, queue);
    await this.nc.flush();
    return collector;
  }

  async close(): Promise<void> {
    if (!this.nc.isClosed()) {
      await this.nc.close();
    }
  }
}

class Collector {
  readonly items: Received[] = [];
  private readonly sub: Subscription;
  constructor(nc: NatsConnection, subject: string, queue?: string) {
    this.sub = nc.subscribe(subject, {
      queue,
      callback: (err, msg) => {
        if (!err) {
          this.items.push({ subject: msg.subject, data: Uint8Array.from(msg.data) });
        }
      },
    });
  }
  waitFor(pred: (item: Received) => boolean, timeoutMs = 5000): Promise<Received> {
    return until(
      `message matching on ${this.sub.getSubject()}`,
      () => this.items.find(pred),
      timeoutMs,
    );
  }
  close(): void {
    this.sub.unsubscribe();
  }
}

const encoder = new TextEncoder();

function executeRequest(vmId: string): Uint8Array {
  return toBinary(
    GuestRequestSchema,
    create(GuestRequestSchema, {
      vmId,
      timeoutMs: 5000,
      operation: { case: 'execute', value: create(ExecuteRequestSchema, { argv: ['id'] }) },
    }),
  );
}

describe('deploy/nats configuration files', () => {
  it('should be the generator output for the checked-in node ids (auth.conf and nats-server.conf)', () => {
    const dir = join(REPO_ROOT, 'deploy', 'nats');
    expect(readFileSync(join(dir, 'auth.conf'), 'utf8')).toBe(renderAuthConf(CHECKED_IN_NODE_IDS));
    expect(readFileSync(join(dir, 'nats-server.conf'), 'utf8')).toBe(renderServerConf());
    expect(renderServerConf()).toMatch(/^include \.\/auth\.conf$/m);
    // TLS on the client port unless asked otherwise (npm start's loopback server).
    expect(renderServerConf()).toMatch(/^tls \{\n {2}cert_file: "\/etc\/nats-tls\/tls\.crt"$/m);
    expect(renderServerConf({ tls: null })).not.toMatch(/^tls \{/m);
  });

  it('should let each node reply in parts per request for as long as the longest guest timeout', () => {
    // nats-server's `allow_responses: true` expires a reply permission after 2 minutes, which a
    // long execute (LQ_GUEST_TIMEOUT_MAX_SECONDS, default 1 h) outlives; a large reply goes in
    // parts, each a message on the reply subject (PROTOCOL.md §9 Reply parts).
    const auth = renderAuthConf(['n1', 'n2']);
    expect(auth.match(/allow_responses: \{ max: 128, expires: "24h" \}/g)).toHaveLength(2);
    expect(auth).not.toMatch(/allow_responses: true/);
    expect(renderAuthConf(['n1'], { responsesMax: 8 })).toMatch(/max: 8,/);
    expect(() => renderAuthConf(['n1'], { responsesMax: 0 })).toThrow(/responses max/);
    expect(renderAuthConf(['n1'], { responsesExpire: '2h' })).toMatch(/expires: "2h"/);
  });

  it('should refuse node ids that are not subject tokens, duplicates and shared password variables', () => {
    expect(() => renderAuthConf([])).toThrow(RenderError);
    expect(() => renderAuthConf(['node.1'])).toThrow(/not a subject token/);
    expect(() => renderAuthConf(['node-*'])).toThrow(/not a subject token/);
    expect(() => renderAuthConf(['n1', 'n1'])).toThrow(/given twice/);
    expect(() => renderAuthConf(['node-1', 'NODE_1'])).toThrow(/share the password variable/);
    expect(() => renderAuthConf(['n1'], { responsesExpire: '0' })).toThrow(/duration/);
  });
});

describe('NATS permissions of node daemons and the control plane (real nats-server)', () => {
  let nats: RunningNats;
  let cp: Client;
  let nodeA: Client;
  let nodeB: Client;
  const clients: Client[] = [];

  async function as(user: string, pass: string): Promise<Client> {
    const client = await Client.connect(nats.url, user, pass);
    clients.push(client);
    return client;
  }

  beforeAll(async () => {
    nats = await startNatsServer({
      // Permissions only: TLS, the rest of deploy's config, is test/deploy/tls.spec.ts's.
      config: renderServerConf({ tls: null }),
      files: { 'auth.conf': renderAuthConf(['node-a', 'node-b', 'node-c']) },
      env: {
        [CONTROL_PLANE_PASSWORD_VAR]: PASSWORDS.controlPlane,
        [nodePasswordVar('node-a')]: PASSWORDS['node-a'],
        // As operators are told to write it (a bcrypt hash must be quoted this way).
        [nodePasswordVar('node-b')]: `"${PASSWORDS['node-b']}"`,
        [nodePasswordVar('node-c')]: PASSWORDS['node-c'],
      },
    });
    [cp, nodeA, nodeB] = await Promise.all([
      as(CONTROL_PLANE_USER, PASSWORDS.controlPlane),
      as(nodeUser('node-a'), PASSWORDS['node-a']),
      as(nodeUser('node-b'), PASSWORDS['node-b']),
    ]);
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await nats?.stop();
  });

  describe("a node daemon's credentials", () => {
    it('should not publish a guest operation to another node, and that node receives nothing', async () => {
      const atB = await nodeB.collect('lq.v1.node.node-b.>');
      try {
        const subject = subjects.guest('node-b', 'execute');
        await nodeA.publishDenied(subject, executeRequest('vm-1'));
        // Barrier: a message the control plane sends afterwards reaches node-b after anything
        // node-a's publish could have delivered.
        const marker = subjects.guest('node-b', 'ping');
        cp.nc.publish(marker, encoder.encode('marker'));
        await atB.waitFor((m) => m.subject === marker);
        expect(atB.items.map((m) => m.subject)).toEqual([marker]);
        expect(nodeA.nc.isClosed()).toBe(false);
      } finally {
        atB.close();
      }
    });

    it.each([
      ["another node's heartbeat", 'lq.v1.node.node-b.heartbeat'],
      ["another node's agent events", 'lq.v1.events.node-b.vm-1.ready'],
      ["another node's telemetry", 'lq.v1.telemetry.node-b.vm-1'],
      ['a guest operation to itself', 'lq.v1.node.node-a.guest.ping'],
      ['a shutdown to another node', 'lq.v1.node.node-b.guest.shutdown'],
      ['a reply it was not asked for (a forged answer)', '_INBOX.forged.1'],
    ])('should not publish %s (%s)', async (_what, subject) => {
      await nodeA.publishDenied(subject);
    });

    it('should not forge another node heartbeat to the control plane', async () => {
      const heartbeats = await cp.collect(subjects.allHeartbeats, QUEUE_GROUP);
      try {
        await nodeA.publishDenied(subjects.heartbeat('node-b'), encoder.encode('forged'));
        nodeB.nc.publish(subjects.heartbeat('node-b'), encoder.encode('genuine'));
        const genuine = await heartbeats.waitFor((m) => m.subject === subjects.heartbeat('node-b'));
        expect(new TextDecoder().decode(genuine.data)).toBe('genuine');
        expect(heartbeats.items).toHaveLength(1);
      } finally {
        heartbeats.close();
      }
    });

    it.each([
      'lq.v1.node.node-b.>',
      'lq.v1.node.node-b.guest.execute',
      'lq.v1.node.*.guest.>',
      'lq.v1.node.*.heartbeat',
      'lq.v1.events.>',
      'lq.v1.telemetry.>',
      '_INBOX.>',
      '>',
    ])('should not subscribe to %s', async (subject) => {
      await nodeA.subscribeDenied(subject);
    });

    it("should serve its own guest subjects: the control plane's request gets node-a's reply, in parts at most", async () => {
      const sub = nodeA.nc.subscribe(subjects.guestWildcard('node-a'), {
        callback: (err, msg) => {
          if (!err) {
            msg.respond(encoder.encode(`pong from node-a to ${msg.subject}`));
            // Parts of a large reply are allowed; one message past allow_responses max is not.
            for (let i = 0; i < DEFAULT_RESPONSES_MAX; i++) {
              msg.respond(encoder.encode('one more'));
            }
          }
        },
      });
      try {
        await nodeA.nc.flush();
        const from = nodeA.errors.length;
        const reply = await cp.nc.request(
          subjects.guest('node-a', 'ping'),
          toBinary(GuestRequestSchema, create(GuestRequestSchema, { vmId: 'vm-1' })),
          { timeout: 5000 },
        );
        expect(new TextDecoder().decode(reply.data)).toBe(
          'pong from node-a to lq.v1.node.node-a.guest.ping',
        );
        const second = await until('second-reply violation', () =>
          nodeA.errors
            .slice(from)
            .find(
              (e): e is PermissionViolationError =>
                e instanceof PermissionViolationError && e.subject.startsWith('_INBOX.'),
            ),
        );
        expect(second.operation).toBe('publish');
      } finally {
        sub.unsubscribe();
        await nodeA.nc.flush();
      }
    });

    it('should publish its own heartbeat, events and telemetry, which the control plane receives through its queue group', async () => {
      const [heartbeats, events, telemetry] = await Promise.all([
        cp.collect(subjects.allHeartbeats, QUEUE_GROUP),
        cp.collect(subjects.allEvents, QUEUE_GROUP),
        cp.collect(subjects.allTelemetry, QUEUE_GROUP),
      ]);
      try {
        const from = nodeA.errors.length;
        nodeA.nc.publish(subjects.heartbeat('node-a'), encoder.encode('hb'));
        nodeA.nc.publish(subjects.event('node-a', 'vm-1', 'ready'), encoder.encode('ev'));
        nodeA.nc.publish(subjects.telemetry('node-a', 'vm-1'), encoder.encode('tm'));
        await nodeA.nc.flush();
        await heartbeats.waitFor((m) => m.subject === 'lq.v1.node.node-a.heartbeat');
        await events.waitFor((m) => m.subject === 'lq.v1.events.node-a.vm-1.ready');
        await telemetry.waitFor((m) => m.subject === 'lq.v1.telemetry.node-a.vm-1');
        expect(nodeA.errors.slice(from)).toEqual([]);
      } finally {
        heartbeats.close();
        events.close();
        telemetry.close();
      }
    });

    it('should be refused with a wrong password, an unknown user, or another node’s password', async () => {
      const attempts: Array<[string, string]> = [
        [nodeUser('node-a'), 'wrong-password'],
        [nodeUser('node-a'), PASSWORDS['node-b']],
        [nodeUser('node-c'), PASSWORDS['node-a']],
        [CONTROL_PLANE_USER, PASSWORDS['node-a']],
      ];
      for (const [user, pass] of attempts) {
        await expect(connect({ servers: nats.url, user, pass })).rejects.toThrow(
          AuthorizationError,
        );
      }
      await expect(connect({ servers: nats.url })).rejects.toThrow(AuthorizationError);
    });
  });

  describe("the control plane's credentials", () => {
    it.each([
      ['a node heartbeat', 'lq.v1.node.node-a.heartbeat'],
      ['an agent event', 'lq.v1.events.node-a.vm-1.ready'],
      ['telemetry', 'lq.v1.telemetry.node-a.vm-1'],
      ['outside the platform subjects', 'lq.v2.anything'],
    ])('should not publish %s (%s)', async (_what, subject) => {
      await cp.publishDenied(subject);
    });

    it('should not subscribe to the guest operations of nodes (they carry commands and files)', async () => {
      await cp.subscribeDenied('lq.v1.node.*.guest.>');
      await cp.subscribeDenied('lq.v1.node.node-a.>');
    });
  });

  describe('a real node daemon with node-a’s credentials', () => {
    let work: string;
    let sims: SimVms;
    let daemon: RunningNodeDaemon;

    beforeAll(async () => {
      work = mkdtempSync(join(tmpdir(), 'lq-nats-perm-'));
      sims = await startSimVms({
        dir: join(work, 'channels'),
        count: 2,
        config: { telemetry_interval_ms: 300 },
      });
    });

    afterAll(async () => {
      await daemon?.stop();
      await sims?.stop();
      if (work) {
        rmSync(work, { recursive: true, force: true });
      }
    });

    it('should not start with a wrong password', async () => {
      await expect(
        startNodeDaemon({
          nodeId: 'node-a',
          natsUrl: nats.url,
          channelDirs: [sims.dir],
          env: { NATS_USER: nodeUser('node-a'), NATS_PASSWORD: 'wrong-password' },
        }),
      ).rejects.toThrow(/Authorization Violation/);
    });

    it('should relay ping, execute and a chunked file both ways to a VM for the control plane, and publish its inventory, without a single permissions violation', async () => {
      const [heartbeats, events, telemetry] = await Promise.all([
        cp.collect(subjects.allHeartbeats, QUEUE_GROUP),
        cp.collect(subjects.allEvents, QUEUE_GROUP),
        cp.collect(subjects.allTelemetry, QUEUE_GROUP),
      ]);
      try {
        daemon = await startNodeDaemon({
          nodeId: 'node-a',
          natsUrl: nats.url,
          channelDirs: [sims.dir],
          env: { NATS_USER: nodeUser('node-a'), NATS_PASSWORD: PASSWORDS['node-a'] },
        });
        const ready = await heartbeats.waitFor((m) => {
          if (m.subject !== subjects.heartbeat('node-a')) {
            return false;
          }
          const hb = fromBinary(NodeHeartbeatSchema, m.data);
          return hb.vms.length === 2 && hb.vms.every((v) => v.state === AgentState.READY);
        }, 15_000);
        const { fileChunkMaxBytes } = fromBinary(NodeHeartbeatSchema, ready.data);

        for (const vm of sims.vms) {
          const r = await signedRequestGuest(cp.nc, 'node-a', 'ping', {
            vmId: vm.id,
            timeoutMs: 3000,
            operation: { case: 'ping', value: {} },
          });
          expect(r.result.case).toBe('pong');
          expect(r.nodeId).toBe('node-a');
        }

        const res = await signedCallGuest(
          cp.nc,
          'node-a',
          'execute',
          {
            vmId: 'vm-1',
            timeoutMs: 10_000,
            operation: {
              case: 'execute',
              value: create(ExecuteRequestSchema, { argv: ['uname', '-s'] }),
            },
          },
          'execute',
        );
        expect(Buffer.from(res.stdout).toString()).toBe('Linux\n');

        const port = testFilePort(cp.nc, 'node-a', 'vm-2', fileChunkMaxBytes, 'test');
        const data = randomBytes(fileChunkMaxBytes * 2 + 1234);
        const path = join(sims.vms[1]!.workDir, 'through-nats.bin');
        async function* source() {
          yield data;
        }
        expect((await writeGuestFile(port, path, source())).bytes).toBe(data.length);
        const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
        expect(sha(readFileSync(path))).toBe(sha(data));
        const hash = createHash('sha256');
        const read = await readGuestFile(port, path, (chunk) => {
          hash.update(chunk);
        });
        expect(read.bytes).toBe(data.length);
        expect(hash.digest('hex')).toBe(sha(data));

        const event = await events.waitFor(
          (m) => m.subject === subjects.event('node-a', 'vm-1', 'ready'),
        );
        expect(fromBinary(AgentEventSchema, event.data).nodeId).toBe('node-a');
        const t = await telemetry.waitFor(
          (m) => m.subject === subjects.telemetry('node-a', 'vm-2'),
        );
        expect(fromBinary(VmTelemetrySchema, t.data).report?.cpuCount).toBeGreaterThan(0);

        // Another heartbeat after all that: the daemon's connection is still up and allowed.
        const seen = heartbeats.items.length;
        await until('a later heartbeat', () =>
          heartbeats.items.slice(seen).find((m) => m.subject === subjects.heartbeat('node-a')),
        );
        expect(daemon.output()).not.toMatch(/Permissions Violation/i);
        // The server logs each refusal with the client's name (the daemon's is its own).
        expect(nats.output()).not.toMatch(/nats\.js:lq-node-daemon-node-a" - \w+ Violation/);
      } finally {
        heartbeats.close();
        events.close();
        telemetry.close();
      }
    });
  });
  // Issue 15, item 5: output of an asynchronous execution travels on a subject of the node that
  // runs it, which only that node may publish, and the control plane listens only there.
  describe("another node's execution output (real control plane, node daemon node-c, agent)", () => {
    let work: string;
    let sims: SimVms;
    let db: TestDatabase;
    let controlPlane: RunningControlPlane;
    let daemon: RunningNodeDaemon;

    beforeAll(async () => {
      work = mkdtempSync(join(tmpdir(), 'lq-nats-exec-'));
      [sims, db] = await Promise.all([
        startSimVms({ dir: join(work, 'channels'), count: 1, prefix: 'c-vm-' }),
        createTestDatabase('lq_nats_exec'),
      ]);
      controlPlane = await startControlPlaneProcess({
        databaseUrl: db.url,
        natsUrl: nats.url,
        env: { NATS_USER: CONTROL_PLANE_USER, NATS_PASSWORD: PASSWORDS.controlPlane },
      });
      daemon = await startNodeDaemon({
        nodeId: 'node-c',
        natsUrl: nats.url,
        channelDirs: [sims.dir],
        env: { NATS_USER: nodeUser('node-c'), NATS_PASSWORD: PASSWORDS['node-c'] },
      });
      await waitForReadyVms(controlPlane.url, 1, { ids: ['c-vm-1'] });
    });

    afterAll(async () => {
      await controlPlane?.stop();
      await daemon?.stop();
      await sims?.stop();
      await db?.drop();
      if (work) {
        rmSync(work, { recursive: true, force: true });
      }
    });

    it('should refuse node-b publishing output for node-c’s execution, and the control plane stores only node-c’s', async () => {
      const gate = join(sims.vms[0]!.workDir, 'go');
      const started = await adminFetch(`${controlPlane.url}/api/vms/c-vm-1/executions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          command: `while [ ! -e '${gate}' ]; do sleep 0.05; done; echo real-output`,
          timeout_seconds: 60,
        }),
      });
      expect(started.status).toBe(202);
      const { id } = (await started.json()) as { id: string };

      // Everything a node could try while the execution runs: the subject of the node that runs
      // it, the shared subject output used before (lq.v1.exec.<id>.output), and its own.
      const forged = toBinary(
        ExecOutputEventSchema,
        create(ExecOutputEventSchema, {
          executionId: id,
          seq: 1n,
          stream: OutputStream.STDOUT,
          data: encoder.encode('FORGED by node-b\n'),
        }),
      );
      const victimSubject = subjects.execOutput('node-c', id);
      const sharedSubject = `lq.v1.exec.${id}.output`;
      const from = nodeB.errors.length;
      for (const subject of [victimSubject, sharedSubject, subjects.execOutput('node-b', id)]) {
        nodeB.nc.publish(subject, forged);
      }
      // The server has handled the publishes (and delivered whatever it let through) before
      // the command may print anything.
      await nodeB.nc.flush();
      writeFileSync(gate, '');

      type View = { status: string; stdout: string };
      let view: View | undefined;
      const deadline = Date.now() + 30_000;
      while (view?.status === undefined || view.status === 'running') {
        if (Date.now() > deadline) {
          throw new Error(`execution still ${view?.status} after 30 s`);
        }
        if (view) {
          await sleep(50);
        }
        view = (await (
          await adminFetch(`${controlPlane.url}/api/executions/${id}`)
        ).json()) as View;
      }
      expect(view.status).toBe('succeeded');
      expect(view.stdout).toBe('real-output\n');

      // NATS refused both subjects that are not node-b's own.
      for (const subject of [victimSubject, sharedSubject]) {
        const err = await nodeB.violation(subject, from);
        expect(err.operation).toBe('publish');
      }
      expect(daemon.output()).not.toMatch(/Permissions Violation/i);
    });
  });
});
