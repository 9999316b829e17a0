// Asynchronous executions (issue 8, acceptance 1–3) through the real stack: control plane,
// nats-server, node daemon, simulated VMs (real agents). Output streams live over SSE and
// resumes from a sequence number; cancel ends the guest's process group; a killed agent ends
// the execution agent_lost instead of leaving it running.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as grpc from '@grpc/grpc-js';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  OutputStream,
  StartExecutionRequestSchema,
  StartExecutionResponseSchema,
  StreamExecutionOutputRequestSchema,
  StreamExecutionOutputResponseSchema,
  type StartExecutionRequest,
  type StartExecutionResponse,
  type StreamExecutionOutputRequest,
  type StreamExecutionOutputResponse,
} from '@lq/proto';
import { type SimVms } from '../../../../test/support/sim-vms.js';
import { startOneNodeStack, type OneNodeStack } from '../../../../test/support/one-node-stack.js';
import {
  TEST_ADMIN_TOKEN,
  adminFetch,
  type RunningControlPlane,
} from '../../../../test/support/control-plane-process.js';

interface SseEvent {
  id?: string;
  event: string;
  data: Record<string, unknown>;
  at: number;
}

/** Reads Server-Sent Events until `until` says stop or the stream ends. */
async function readSse(
  url: string,
  headers: Record<string, string>,
  until: (events: SseEvent[]) => boolean,
): Promise<SseEvent[]> {
  const abort = new AbortController();
  const res = await fetch(url, {
    headers: { Authorization: `Bearer ${TEST_ADMIN_TOKEN}`, ...headers },
    signal: abort.signal,
  });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
  const events: SseEvent[] = [];
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let buf = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) {
        break;
      }
      buf += decoder.decode(value, { stream: true });
      let cut: number;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        const e: Partial<SseEvent> = { at: Date.now() };
        for (const line of block.split('\n')) {
          if (line.startsWith('id: ')) {
            e.id = line.slice(4);
          } else if (line.startsWith('event: ')) {
            e.event = line.slice(7);
          } else if (line.startsWith('data: ')) {
            e.data = JSON.parse(line.slice(6)) as Record<string, unknown>;
          }
        }
        if (e.event) {
          events.push(e as SseEvent);
        }
      }
      if (until(events)) {
        break;
      }
    }
  } finally {
    abort.abort();
  }
  return events;
}

describe('asynchronous executions', () => {
  let stack: OneNodeStack | undefined;
  let work: string;
  let sim: SimVms;
  let cp: RunningControlPlane;

  const start = async (vm: string, body: Record<string, unknown>) => {
    const res = await adminFetch(`${cp.url}/api/vms/${vm}/executions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const json = (await res.json()) as Record<string, unknown>;
    expect([res.status, json.status]).toEqual([202, 'running']);
    return json.id as string;
  };
  const status = async (id: string) =>
    (await (await adminFetch(`${cp.url}/api/executions/${id}`)).json()) as Record<string, unknown>;

  beforeAll(async () => {
    stack = await startOneNodeStack({
      name: 'exec',
      vms: 2,
      cpEnv: { LQ_EXEC_LOST_GRACE_MS: '2000' },
    });
    ({ work, sim, cp } = stack);
  });

  afterAll(async () => {
    await stack?.stop();
  });

  it('should stream lines as they happen and resume exactly after a reconnect', async () => {
    const t0 = Date.now();
    const id = await start('vm-1', {
      command: 'for i in 1 2 3 4 5 6 7 8 9 10; do echo line-$i; sleep 1; done',
      timeout_seconds: 60,
    });
    const url = `${cp.url}/api/executions/${id}/output?follow=1`;
    const first = await readSse(url, {}, (e) => e.filter((x) => x.event === 'output').length >= 4);
    const firstOutput = first.find((e) => e.event === 'output')!;
    process.stderr.write(`[exec] first line ${firstOutput.at - t0} ms after start\n`);
    // Lines arrive as they happen: while the command still runs (it takes 10 s), about a
    // second apart, not all at the end.
    expect((await status(id)).status).toBe('running');
    const outputs = first.filter((e) => e.event === 'output');
    expect(outputs[3]!.at - outputs[0]!.at).toBeGreaterThan(1000);
    const lastSeen = outputs.at(-1)!.id!;

    const rest = await readSse(url, { 'Last-Event-ID': lastSeen }, (e) =>
      e.some((x) => x.event === 'end'),
    );
    const all = [...outputs, ...rest.filter((e) => e.event === 'output')];
    const seqs = all.map((e) => Number(e.id));
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    expect(all.map((e) => e.data.text).join('')).toBe(
      Array.from({ length: 10 }, (_, i) => `line-${i + 1}\n`).join(''),
    );
    const end = rest.find((e) => e.event === 'end')!;
    expect(end.data).toMatchObject({ id, status: 'succeeded', exit_code: 0 });

    const view = await status(id);
    expect(view).toMatchObject({ status: 'succeeded', exit_code: 0 });
    expect(view.stdout).toContain('line-10\n');
    const history = (await (
      await adminFetch(`${cp.url}/api/audit/executions?vm_id=vm-1&limit=5`)
    ).json()) as { executions: Array<Record<string, unknown>> };
    expect(history.executions.find((e) => e.request_id === id)).toMatchObject({
      status: 'ok',
      exit_code: 0,
    });
  }, 30_000);

  it('should stop the guest process group on cancel', async () => {
    const pgidFile = join(work, 'pgid');
    const id = await start('vm-1', {
      command: `echo $$ > ${pgidFile}; sleep 300 & sleep 300`,
      timeout_seconds: 600,
    });
    // The shell creates the file before it writes its pid: wait for the number itself.
    const pgidOf = () => (existsSync(pgidFile) ? Number(readFileSync(pgidFile, 'utf8').trim()) : 0);
    for (let i = 0; i < 50 && !(pgidOf() > 0); i++) {
      await sleep(100);
    }
    const pgid = pgidOf();
    expect(pgid).toBeGreaterThan(0);
    const res = await adminFetch(`${cp.url}/api/executions/${id}/cancel`, { method: 'POST' });
    expect(res.status).toBe(202);
    let view: Record<string, unknown> = {};
    for (let i = 0; i < 50; i++) {
      view = await status(id);
      if (view.status !== 'running') {
        break;
      }
      await sleep(100);
    }
    expect(view.status).toBe('cancelled');
    const live = execFileSync('ps', ['-eo', 'pgid=,stat='], { encoding: 'utf8' })
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .filter(([g, stat]) => Number(g) === pgid && !stat?.startsWith('Z'));
    expect(live).toEqual([]);
  });

  it('should end agent_lost when the agent is killed mid-run, without hanging', async () => {
    const id = await start('vm-2', { command: 'echo started; sleep 120', timeout_seconds: 300 });
    await readSse(`${cp.url}/api/executions/${id}/output?follow=1`, {}, (e) =>
      e.some((x) => x.event === 'output'),
    );
    const killedAt = Date.now();
    await sim.kill('vm-2', 'SIGKILL');
    let view: Record<string, unknown> = {};
    while (Date.now() - killedAt < 15_000) {
      view = await status(id);
      if (view.status !== 'running') {
        break;
      }
      await sleep(200);
    }
    process.stderr.write(`[exec] agent_lost ${Date.now() - killedAt} ms after the kill\n`);
    expect(view.status).toBe('agent_lost');
    expect(view.stdout).toBe('started\n');
  }, 30_000);

  it('should start an execution and stream its output over gRPC (server streaming)', async () => {
    const client = new grpc.Client(`127.0.0.1:${cp.grpcPort}`, grpc.credentials.createInsecure());
    const metadata = new grpc.Metadata();
    metadata.set('authorization', `Bearer ${TEST_ADMIN_TOKEN}`);
    try {
      const started = await new Promise<StartExecutionResponse>((resolve, reject) =>
        client.makeUnaryRequest(
          '/limiquantix.compute.v1.VMService/StartExecution',
          (r: StartExecutionRequest) => Buffer.from(toBinary(StartExecutionRequestSchema, r)),
          (b: Buffer) => fromBinary(StartExecutionResponseSchema, b),
          create(StartExecutionRequestSchema, {
            execute: { vmId: 'vm-1', command: 'echo out; echo err >&2; sleep 0.5; exit 3' },
          }),
          metadata,
          (err, res) => (err || !res ? reject(err ?? new Error('no reply')) : resolve(res)),
        ),
      );
      const id = started.execution!.id;
      const messages: StreamExecutionOutputResponse[] = [];
      await new Promise<void>((resolve, reject) => {
        const call = client.makeServerStreamRequest(
          '/limiquantix.compute.v1.VMService/StreamExecutionOutput',
          (r: StreamExecutionOutputRequest) =>
            Buffer.from(toBinary(StreamExecutionOutputRequestSchema, r)),
          (b: Buffer) => fromBinary(StreamExecutionOutputResponseSchema, b),
          create(StreamExecutionOutputRequestSchema, { executionId: id }),
          metadata,
        );
        call.on('data', (m: StreamExecutionOutputResponse) => messages.push(m));
        call.on('error', reject);
        call.on('end', () => resolve());
      });
      const chunks = messages.flatMap((m) => (m.event.case === 'chunk' ? [m.event.value] : []));
      const text = (s: OutputStream) =>
        Buffer.concat(chunks.filter((c) => c.stream === s).map((c) => c.data)).toString();
      expect(text(OutputStream.STDOUT)).toBe('out\n');
      expect(text(OutputStream.STDERR)).toBe('err\n');
      const end = messages.at(-1)!.event;
      expect(end.case).toBe('end');
      expect(end.value).toMatchObject({ id, status: 'failed', exitCode: 3 });
    } finally {
      client.close();
    }
  });
});
