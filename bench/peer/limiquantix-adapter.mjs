// Adapter for ../shared/peer-bench (qemu-ga/bench.mjs): our guest agent, measured by the same
// harness as qemu-ga, in the same run. Exports what qemu-ga/agents/qemu-ga.mjs exports; speaks
// our protocol through the project's own client (libs/host AgentClient). The agent is the
// executable users install, dist/agent/limiquantix-agent-linux-amd64 (LQ_PEER_AGENT names
// another). Needs `npm run build` and scripts/build-executables.mjs.
// Run it with `npm run bench:peer`, which also runs qemu-ga and prints both side by side.
//
// How the harness's QGA-shaped operations map onto ours:
// - exec + exec-status: one Execute request returns the whole result (there is nothing to poll),
//   so exec() waits for it and execStatus() answers from it: one "poll".
// - file open/read/close for reading: file.open, file.handle.read, file.close (the agent keeps
//   the file open, like qemu-ga). Writes are stateless (path + offset): a "w" handle is the path
//   and a position kept here; the first write creates and truncates.
// - info: OS facts from os.info, network interfaces from GetInfo, filesystems from GetFsInfo.
// Shutdown, quiesce, time and password operations are blocked in the agent's policy.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { create, toJson } from '@bufbuild/protobuf';
import { AgentClient } from '../../dist/tsc/libs/host/src/index.js';
import {
  ExecuteRequestSchema,
  FileCloseRequestSchema,
  FileHandleReadRequestSchema,
  FileOpenRequestSchema,
  FileWriteRequestSchema,
  GetFsInfoRequestSchema,
  GetFsInfoResponseSchema,
  GetInfoRequestSchema,
  GetOsInfoRequestSchema,
  NetworkInterfaceSchema,
  OsInfoSchema,
  PingRequestSchema,
} from '../../dist/tsc/libs/proto/src/index.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const AGENT = process.env.LQ_PEER_AGENT ?? join(REPO, 'dist/agent/limiquantix-agent-linux-amd64');

export const name = 'limiquantix';

export function version() {
  return `limiquantix-agent ${execFileSync(AGENT, ['--version'], { encoding: 'utf8' }).trim()}`;
}

// The harness's own process bookkeeping (start and stop by PID, isAlive), beside its bench.mjs.
const { spawnAgent, stopAgent } = await import(
  pathToFileURL(join(dirname(resolve(process.argv[1])), 'agents/proc.mjs')).href
);

/** Starts the agent on <dir>/lq.sock, file operations confined to <dir>; does not wait. */
export function start({ dir }) {
  mkdirSync(dir, { recursive: true });
  const sock = join(dir, 'lq.sock');
  const config = join(dir, 'lq-agent.json');
  rmSync(sock, { force: true });
  writeFileSync(
    config,
    JSON.stringify({
      log_level: 'warn',
      telemetry_interval_ms: 0,
      policy: { blocked_operations: ['shutdown', 'quiesce', 'time.sync', 'password.set'] },
      files: { roots: [dir] },
    }),
  );
  const h = spawnAgent([AGENT, '--listen', sock, '--config', config], join(dir, 'lq-agent.log'));
  return { ...h, sock };
}

export async function stop(h) {
  await stopAgent(h);
  rmSync(h.sock, { force: true });
}

export async function connect(h) {
  const client = new AgentClient({
    path: h.sock,
    hostId: 'peer-bench',
    // Frames up to the agent's own limit; larger requests are refused by the agent, as the
    // harness's probes expect.
    maxFrameBytes: 64 * 1024 * 1024,
    requestTimeoutMs: 60_000,
  });
  client.start();
  try {
    await client.waitReady(1000);
  } catch (err) {
    client.close();
    throw err;
  }
  return new LimiQuantixSession(client);
}

class LimiQuantixSession {
  constructor(client) {
    this.client = client;
    this.results = new Map();
    this.handles = new Map();
    this.nextId = 1;
    this.c = { closed: false, stray: 0 };
  }

  ping() {
    return this.client.call({ case: 'ping', value: create(PingRequestSchema) }, 'pong');
  }

  pingPipelined(n) {
    return Promise.all(Array.from({ length: n }, () => this.ping()));
  }

  async exec(path, args = []) {
    const r = await this.client.call(
      { case: 'execute', value: create(ExecuteRequestSchema, { argv: [path, ...args] }) },
      'executeResponse',
    );
    const id = this.nextId++;
    this.results.set(id, r);
    return id;
  }

  async execStatus(id) {
    const r = this.results.get(id);
    this.results.delete(id);
    const stdout = Buffer.from(r.stdout);
    const stderr = Buffer.from(r.stderr);
    return {
      exited: true,
      exitcode: r.exitCode,
      signal: r.signal || undefined,
      stdout,
      stderr,
      outTruncated: r.stdoutTruncated,
      errTruncated: r.stderrTruncated,
      wireBytes: stdout.length + stderr.length,
    };
  }

  async fileOpen(path, mode = 'r') {
    const id = this.nextId++;
    if (mode.startsWith('r')) {
      const r = await this.client.call(
        { case: 'fileOpen', value: create(FileOpenRequestSchema, { path }) },
        'fileOpenResponse',
      );
      this.handles.set(id, { path, mode, agentHandle: r.handle });
    } else {
      this.handles.set(id, { path, mode, pos: 0, written: false });
    }
    return id;
  }

  async fileRead(handle, count) {
    const h = this.handles.get(handle);
    const r = await this.client.call(
      {
        case: 'fileHandleRead',
        value: create(FileHandleReadRequestSchema, { handle: h.agentHandle, length: count }),
      },
      'fileHandleReadResponse',
    );
    // A Buffer over the reply's bytes, not a copy of them (the reply is ours alone).
    const data = Buffer.from(r.data.buffer, r.data.byteOffset, r.data.length);
    return { data, eof: r.eof, count: r.data.length };
  }

  async fileWrite(handle, buf, opts) {
    const h = this.handles.get(handle);
    const first = !h.written;
    const r = await this.client.call(
      {
        case: 'fileWrite',
        value: create(FileWriteRequestSchema, {
          path: h.path,
          offset: BigInt(h.pos),
          data: buf,
          create: true,
          truncate: first && h.mode.startsWith('w'),
        }),
      },
      'fileWriteResponse',
      opts?.timeoutMs ? { timeoutMs: opts.timeoutMs } : undefined,
    );
    h.written = true;
    h.pos += Number(r.bytesWritten);
    return Number(r.bytesWritten);
  }

  async fileFlush() {
    return {};
  }

  async fileClose(handle) {
    const h = this.handles.get(handle);
    if (h?.agentHandle !== undefined) {
      this.handles.delete(handle);
      await this.client.call(
        { case: 'fileClose', value: create(FileCloseRequestSchema, { handle: h.agentHandle }) },
        'fileCloseResponse',
      );
      return {};
    }
    if (h && !h.written && h.mode.startsWith('w')) {
      // "w" creates the file even when nothing is written.
      await this.fileWrite(handle, Buffer.alloc(0)).catch(() => undefined);
    }
    this.handles.delete(handle);
    return {};
  }

  /** The answer as proto3 JSON (the harness sizes it as JSON). */
  async info(what) {
    if (what === 'fsinfo') {
      const r = await this.client.call(
        { case: 'getFsInfo', value: create(GetFsInfoRequestSchema) },
        'getFsInfoResponse',
      );
      return toJson(GetFsInfoResponseSchema, r);
    }
    if (what === 'osinfo') {
      const r = await this.client.call(
        { case: 'getOsInfo', value: create(GetOsInfoRequestSchema) },
        'getOsInfoResponse',
      );
      return r.os ? toJson(OsInfoSchema, r.os) : {};
    }
    const r = await this.client.call(
      { case: 'getInfo', value: create(GetInfoRequestSchema) },
      'getInfoResponse',
    );
    return (r.info?.interfaces ?? []).map((i) => toJson(NetworkInterfaceSchema, i));
  }

  /** Requests are matched by id and a failed one leaves nothing behind: nothing to resync. */
  async resync() {
    return undefined;
  }

  async close() {
    this.c.closed = true;
    this.client.close();
  }
}
