// System tests of the control plane (issue 4): real PostgreSQL (a fresh database), a real
// nats-server, two real node daemons, four simulated VMs (real agents), and two control-plane
// processes sharing NATS and the database.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as grpc from '@grpc/grpc-js';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  ExecuteScriptRequestSchema,
  ExecuteScriptResponseSchema,
  PingAgentRequestSchema,
  PingAgentResponseSchema,
  type ExecuteScriptResponse,
  type PingAgentResponse,
} from '@lq/proto';
import { startNatsServer, type RunningNats } from '../../../../test/support/nats-server.js';
import { startSimVms, type SimVms } from '../../../../test/support/sim-vms.js';
import {
  startNodeDaemon,
  type RunningNodeDaemon,
} from '../../../../test/support/node-daemon-process.js';
import { createTestDatabase, type TestDatabase } from '../../../../test/support/postgres.js';
import {
  TEST_ADMIN_TOKEN,
  adminFetch as fetch,
  startControlPlaneProcess,
  type RunningControlPlane,
} from '../../../../test/support/control-plane-process.js';

import type { TelemetryEventView, VmView } from '@lq/api';

const MiB = 1024 * 1024;

type ApiVm = VmView;

async function json(res: Response): Promise<Record<string, unknown>> {
  const text = await res.text();
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new Error(`not JSON (${res.status}): ${text.slice(0, 300)}`);
  }
}

async function post(
  base: string,
  path: string,
  body: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await json(res) };
}

function grpcUnary<Req, Res>(
  port: number,
  method: string,
  request: Req,
  encode: (r: Req) => Uint8Array,
  decode: (b: Uint8Array) => Res,
): Promise<Res> {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${TEST_ADMIN_TOKEN}`);
  return new Promise<Res>((resolve, reject) => {
    client.makeUnaryRequest(
      `/limiquantix.compute.v1.VMService/${method}`,
      (r: Req) => Buffer.from(encode(r)),
      (b: Buffer) => decode(b),
      request,
      metadata,
      (err, res) => {
        client.close();
        if (err || res === undefined) {
          reject(err ?? new Error('no response'));
        } else {
          resolve(res);
        }
      },
    );
  });
}

describe('control plane over NATS, node daemons and guest agents', () => {
  let work: string;
  let nats: RunningNats;
  let db: TestDatabase;
  let simA: SimVms;
  let simB: SimVms;
  let daemonA: RunningNodeDaemon;
  let daemonB: RunningNodeDaemon;
  let cp1: RunningControlPlane;
  let cp2: RunningControlPlane;
  let firstListing: ApiVm[] = [];
  let listedAfterMs = Infinity;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'lq-cp-'));
    const dirA = join(work, 'a');
    const dirB = join(work, 'b');
    mkdirSync(dirA);
    mkdirSync(dirB);
    [nats, db] = await Promise.all([startNatsServer(), createTestDatabase('lq_cp')]);
    [simA, simB] = await Promise.all([
      startSimVms({ dir: dirA, count: 2, prefix: 'a-vm-', config: { telemetry_interval_ms: 300 } }),
      startSimVms({ dir: dirB, count: 2, prefix: 'b-vm-' }),
    ]);
    // The first control plane applies the migrations; the second finds them applied.
    cp1 = await startControlPlaneProcess({ databaseUrl: db.url, natsUrl: nats.url });
    const startedAt = Date.now();
    [daemonA, daemonB] = await Promise.all([
      startNodeDaemon({ nodeId: 'node-a', natsUrl: nats.url, channelDirs: [dirA] }),
      startNodeDaemon({ nodeId: 'node-b', natsUrl: nats.url, channelDirs: [dirB] }),
    ]);
    while (Date.now() - startedAt < 60_000) {
      firstListing = ((await json(await fetch(`${cp1.url}/api/vms`))).vms ?? []) as ApiVm[];
      if (firstListing.length === 4 && firstListing.every((v) => v.agent_state === 'ready')) {
        break;
      }
      await sleep(50);
    }
    listedAfterMs = Date.now() - startedAt;
    // The second replica takes uploads of at most 1 MiB (the limit test); the first, the default.
    cp2 = await startControlPlaneProcess({
      databaseUrl: db.url,
      natsUrl: nats.url,
      env: { LQ_MAX_UPLOAD_BYTES: String(MiB) },
    });
  });

  afterAll(async () => {
    if (process.env.LQ_TEST_DUMP) {
      process.stderr.write(
        `--- cp1 ---\n${cp1?.output()}\n--- daemonA ---\n${daemonA?.output()}\n`,
      );
    }
    await Promise.all([cp1?.stop(), cp2?.stop()]);
    await Promise.all([daemonA?.stop(), daemonB?.stop()]);
    await Promise.all([simA?.stop(), simB?.stop()]);
    await nats?.stop();
    await db?.drop();
    rmSync(work, { recursive: true, force: true });
  });

  it('should list all 4 VMs with their node and a ready agent soon after start', async () => {
    // The time is printed (bench:control-plane and npm run faults measure such times).
    process.stderr.write(
      `[inventory] all 4 VMs listed ready ${listedAfterMs} ms after the node daemons started\n`,
    );
    expect(firstListing.map((v) => [v.id, v.node_id, v.agent_state])).toEqual([
      ['a-vm-1', 'node-a', 'ready'],
      ['a-vm-2', 'node-a', 'ready'],
      ['b-vm-1', 'node-b', 'ready'],
      ['b-vm-2', 'node-b', 'ready'],
    ]);
    const one = await json(await fetch(`${cp1.url}/api/vms/a-vm-1`));
    expect(one.agent_version).toMatch(/\d+\.\d+/);
    expect(one.hostname).toBeTruthy();
    const nodes = (await json(await fetch(`${cp1.url}/api/nodes`))).nodes as Array<{ id: string }>;
    expect(nodes.map((n) => n.id).sort()).toEqual(['node-a', 'node-b']);
  });

  it('should answer the seed’s Connect calls verbatim, and the same over REST and gRPC', async () => {
    const ping = await post(cp1.url, '/limiquantix.compute.v1.VMService/PingAgent', {
      vmId: 'a-vm-1',
    });
    expect(ping.status).toBe(200);
    expect(ping.body.agentVersion).toMatch(/\d+\.\d+/);
    const exec = await post(cp1.url, '/limiquantix.compute.v1.VMService/ExecuteScript', {
      vmId: 'b-vm-2',
      command: 'uname -a',
      timeoutSeconds: 30,
    });
    expect(exec.status).toBe(200);
    expect(exec.body.stdout).toMatch(/^Linux /);
    expect(exec.body.exitCode).toBe(0);

    const restPing = await post(cp2.url, '/api/vms/b-vm-1/ping', {});
    expect(restPing.status).toBe(200);
    expect(restPing.body.agent_version).toMatch(/\d+\.\d+/);
    const restExec = await post(cp2.url, '/api/vms/a-vm-2/execute', {
      command: 'echo "$GREETING" from $(id -un)',
      env: { GREETING: 'hello' },
      run_as_user: 'nobody',
      timeout_seconds: 10,
    });
    expect(restExec.status).toBe(200);
    expect(restExec.body.stdout).toBe('hello from nobody\n');
    expect(restExec.body.exit_code).toBe(0);

    const gPing: PingAgentResponse = await grpcUnary(
      cp1.grpcPort,
      'PingAgent',
      create(PingAgentRequestSchema, { vmId: 'b-vm-1' }),
      (r) => toBinary(PingAgentRequestSchema, r),
      (b) => fromBinary(PingAgentResponseSchema, b),
    );
    expect(gPing.agentVersion).toMatch(/\d+\.\d+/);
    const gExec: ExecuteScriptResponse = await grpcUnary(
      cp2.grpcPort,
      'ExecuteScript',
      create(ExecuteScriptRequestSchema, {
        vmId: 'a-vm-1',
        argv: ['uname', '-s'],
        timeoutSeconds: 10,
      }),
      (r) => toBinary(ExecuteScriptRequestSchema, r),
      (b) => fromBinary(ExecuteScriptResponseSchema, b),
    );
    expect(gExec.stdout).toBe('Linux\n');
  });

  it('should keep a 32 MiB file’s sha256 through PUT and GET, streaming with bounded memory', async () => {
    const data = randomBytes(32 * MiB);
    const path = join(simA.vms[0]!.workDir, 'upload.bin');
    const before = cp1.memory();
    const put = await fetch(
      `${cp1.url}/api/vms/a-vm-1/files?path=${encodeURIComponent(path)}&mode=0640`,
      {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream' },
        body: data,
      },
    );
    expect(put.status).toBe(200);
    expect((await json(put)).bytes).toBe(32 * MiB);
    const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
    expect(sha(readFileSync(path))).toBe(sha(data));

    const get = await fetch(`${cp1.url}/api/vms/a-vm-1/files?path=${encodeURIComponent(path)}`);
    expect(get.status).toBe(200);
    const hash = createHash('sha256');
    let bytes = 0;
    for await (const chunk of get.body as unknown as AsyncIterable<Uint8Array>) {
      hash.update(chunk);
      bytes += chunk.length;
    }
    expect(bytes).toBe(32 * MiB);
    expect(hash.digest('hex')).toBe(sha(data));
    // Streaming, not buffering: 256 MiB more through the same process must not grow its peak by
    // anything like 256 MiB (a buffered upload would need all of it at once). What streaming
    // leaves is the garbage of the chunks passed on, until a collection: up to 5 MiB on Node 20,
    // up to 75 MiB on Node 24 (its larger young generation) after the 96 MiB this test once
    // sent, against a 64 MiB bound; so more bytes and a bound of half of them.
    const base = cp1.memory();
    const MORE_MIB = 256;
    async function* big(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < MORE_MIB; i++) {
        yield randomBytes(MiB);
      }
    }
    const put2 = await fetch(`${cp1.url}/api/vms/a-vm-1/files?path=${encodeURIComponent(path)}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream' },
      body: ReadableStream.from(big()),
      duplex: 'half',
    });
    expect(put2.status).toBe(200);
    const after = cp1.memory();
    process.stderr.write(
      `[control plane memory] RSS before ${(before.rss / MiB).toFixed(1)} MiB; peak after 32 MiB up+down ${(base.hwm / MiB).toFixed(1)} MiB; RSS then ${(base.rss / MiB).toFixed(1)} MiB; peak after ${MORE_MIB} MiB more ${(after.hwm / MiB).toFixed(1)} MiB\n`,
    );
    expect(after.hwm - base.rss).toBeLessThan((MORE_MIB / 2) * MiB);
  });

  it('should refuse an upload over LQ_MAX_UPLOAD_BYTES with 413, declared or streamed, writing nothing', async () => {
    const path = join(simA.vms[0]!.workDir, 'too-big.bin');
    const url = `${cp2.url}/api/vms/a-vm-1/files?path=${encodeURIComponent(path)}`;
    const declared = await fetch(url, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream' },
      body: randomBytes(MiB + 1),
    });
    expect(declared.status).toBe(413);
    expect(await json(declared)).toMatchObject({
      code: 'TOO_LARGE',
      message: expect.stringMatching(/LQ_MAX_UPLOAD_BYTES 1048576/),
    });
    // No Content-Length: the limit is found while the body streams.
    async function* chunks(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 3; i++) {
        yield randomBytes(MiB / 2);
      }
    }
    const streamed = await fetch(url, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream' },
      body: ReadableStream.from(chunks()),
      duplex: 'half',
    });
    expect(streamed.status).toBe(413);
    expect((await json(streamed)).code).toBe('TOO_LARGE');
    expect(existsSync(path)).toBe(false);
    // Refused before their bodies were read, both ended their connections: kept open, one
    // waited for a body nobody reads, and the next request sent on it hung.
    expect([declared.headers.get('connection'), streamed.headers.get('connection')]).toEqual([
      'close',
      'close',
    ]);
    for (let i = 0; i < 4; i++) {
      expect((await fetch(`${cp2.url}/api/vms/a-vm-1`)).status).toBe(200);
    }
    const fits = await fetch(url, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream' },
      body: randomBytes(MiB),
    });
    expect(fits.status).toBe(200);
  });

  it('should map each failure to its status with a message, refusing bad input before sending', async () => {
    const unknown = await post(cp1.url, '/api/vms/no-such-vm/ping', {});
    expect(unknown.status).toBe(404);
    expect(unknown.body.code).toBe('VM_NOT_FOUND');

    const bad = await post(cp1.url, '/api/vms/a-vm-1/execute', {
      command: 'true',
      timeout_seconds: 0,
    });
    expect(bad.status).toBe(400);
    expect(String(bad.body.message)).toMatch(/timeout_seconds/);
    const both = await post(cp1.url, '/api/vms/a-vm-1/execute', {
      command: 'true',
      argv: ['true'],
    });
    expect(both.status).toBe(400);
    expect(String(both.body.message)).toMatch(/command|argv/);
    const unknownField = await post(cp1.url, '/api/vms/a-vm-1/execute', {
      command: 'true',
      sudo: true,
    });
    expect(unknownField.status).toBe(400);
    expect(String(unknownField.body.message)).toMatch(/sudo/);
    const huge = await post(cp1.url, '/api/vms/a-vm-1/execute', { command: 'x'.repeat(70_000) });
    expect(huge.status).toBe(400);
    expect(String(huge.body.message)).toMatch(/command/);
    const relative = await fetch(`${cp1.url}/api/vms/a-vm-1/files?path=etc/passwd`);
    expect(relative.status).toBe(400);

    const agentError = await post(cp1.url, '/api/vms/a-vm-1/execute', {
      argv: ['/no/such/program'],
    });
    expect(agentError.status).toBe(502);
    expect(agentError.body.code).toBe('AGENT_ERROR');
    expect(String(agentError.body.message)).toMatch(/no\/such\/program/);

    await simB.kill('b-vm-2', 'SIGKILL');
    let notConnected = await post(cp1.url, '/api/vms/b-vm-2/ping', {});
    for (let i = 0; i < 20 && notConnected.status !== 409; i++) {
      await sleep(100);
      notConnected = await post(cp1.url, '/api/vms/b-vm-2/ping', {});
    }
    expect(notConnected.status).toBe(409);
    expect(notConnected.body.code).toBe('AGENT_NOT_CONNECTED');

    // A node daemon that is there but does not answer: 504.
    daemonA.proc.kill('SIGSTOP');
    try {
      const timeout = await post(cp1.url, '/api/vms/a-vm-2/ping', { timeout_seconds: 1 });
      expect(timeout.status).toBe(504);
      expect(timeout.body.code).toBe('NODE_TIMEOUT');
    } finally {
      daemonA.proc.kill('SIGCONT');
    }
    // No daemon serving the node at all: 503.
    await daemonB.stop();
    const gone = await post(cp1.url, '/api/vms/b-vm-1/ping', {});
    expect(gone.status).toBe(503);
    expect(gone.body.code).toBe('NODE_UNAVAILABLE');
  });

  it('should stream a VM’s live telemetry as Server-Sent Events', async () => {
    const abort = new AbortController();
    const res = await fetch(`${cp2.url}/api/vms/a-vm-1/telemetry/stream`, { signal: abort.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
    let text = '';
    const decoder = new TextDecoder();
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      text += decoder.decode(chunk, { stream: true });
      if (/event: telemetry\ndata: .+\n\n/.test(text)) {
        break;
      }
    }
    abort.abort();
    const data = JSON.parse(/event: telemetry\ndata: (.+)\n/.exec(text)![1]!) as TelemetryEventView;
    expect(data.vm_id).toBe('a-vm-1');
    expect(data.report?.cpu_count).toBeGreaterThan(0);
    expect((await fetch(`${cp2.url}/api/vms/no-such-vm/telemetry/stream`)).status).toBe(404);
  });

  it('should serve from both replicas with the same inventory', async () => {
    const [v1, v2] = await Promise.all([
      fetch(`${cp1.url}/api/vms`).then(json),
      fetch(`${cp2.url}/api/vms`).then(json),
    ]);
    // Telemetry changes every 300 ms here, so two reads may straddle a report: compare the rest.
    const stable = (vms: unknown) =>
      (vms as Array<Record<string, unknown>>).map(
        ({ telemetry: _t, telemetry_at: _a, last_seen: _l, ...rest }) => rest,
      );
    expect(stable(v2.vms)).toEqual(stable(v1.vms));
    const r1 = await post(cp1.url, '/api/vms/a-vm-1/ping', {});
    const r2 = await post(cp2.url, '/api/vms/a-vm-1/ping', {});
    expect([r1.status, r2.status]).toEqual([200, 200]);
    const health = await json(await fetch(`${cp2.url}/health`));
    expect(health.status).toBe('ok');
    const metrics = await (await fetch(`${cp1.url}/metrics`)).text();
    expect(metrics).toMatch(/lq_guest_operations_total\{[^}]*operation="ping"/);
    expect((await fetch(`${cp1.url}/api/docs-json`)).status).toBe(200);
  });
});
