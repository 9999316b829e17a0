// The agent's --device channel (the production path inside a VM), over a raw pseudo-terminal
// standing in for the virtio-serial port: a Python bridge relays its other end to a Unix
// socket, as QEMU does with the chardev. The real QEMU guest comes with the QEMU issue.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { create } from '@bufbuild/protobuf';
import { ExecuteRequestSchema, PingRequestSchema } from '@lq/proto';
import { AgentClient, readGuestFile, writeGuestFile } from '@lq/host';
import { agentExecutable } from '../support/agent-process.js';

const BRIDGE = fileURLToPath(new URL('../support/pty-bridge.py', import.meta.url));

function stop(proc: ChildProcess | undefined): Promise<void> {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) {
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    proc.once('exit', () => resolve());
    proc.kill('SIGTERM');
    setTimeout(() => proc.kill('SIGKILL'), 3000).unref();
  });
}

describe('guest agent on a character device (--device)', () => {
  let dir: string;
  let bridge: ChildProcess;
  let agent: ChildProcess;
  let socketPath: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lq-agent-device-'));
    socketPath = join(dir, 'host.sock');
    bridge = spawn('python3', [BRIDGE, socketPath], { stdio: ['ignore', 'pipe', 'inherit'] });
    const device = await new Promise<string>((resolve, reject) => {
      bridge.stdout!.once('data', (d: Buffer) => resolve(d.toString().trim()));
      bridge.once('exit', (code) => reject(new Error(`pty bridge exited ${code}`)));
    });
    writeFileSync(
      join(dir, 'agent.json'),
      JSON.stringify({ log_level: 'warn', files: { roots: [dir] } }),
    );
    agent = spawn(agentExecutable(), ['--device', device, '--config', join(dir, 'agent.json')], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
  });

  afterAll(async () => {
    await stop(agent);
    await stop(bridge);
    rmSync(dir, { recursive: true, force: true });
  });

  async function connect(): Promise<AgentClient> {
    const client = new AgentClient({ path: socketPath, hostId: 'device-test', syncTimeoutMs: 300 });
    client.start();
    await client.waitReady(10_000);
    return client;
  }

  it('should sync, answer ping and execute, and move a file through the device', async () => {
    const client = await connect();
    try {
      await client.call({ case: 'ping', value: create(PingRequestSchema) }, 'pong');
      const r = await client.call(
        {
          case: 'execute',
          value: create(ExecuteRequestSchema, { argv: ['echo', 'through the port'] }),
        },
        'executeResponse',
      );
      expect(Buffer.from(r.stdout).toString()).toBe('through the port\n');

      const data = randomBytes(4 * 1024 * 1024);
      const path = join(dir, 'device.bin');
      async function* source() {
        yield data;
      }
      await writeGuestFile(client, path, source());
      expect(createHash('sha256').update(readFileSync(path)).digest('hex')).toBe(
        createHash('sha256').update(data).digest('hex'),
      );
      const hash = createHash('sha256');
      await readGuestFile(client, path, (chunk) => {
        hash.update(chunk);
      });
      expect(hash.digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
    } finally {
      client.close();
    }
  });

  it('should serve a host that reconnects, after a sync', async () => {
    const first = await connect();
    first.close();
    const second = await connect();
    try {
      const pong = await second.call({ case: 'ping', value: create(PingRequestSchema) }, 'pong');
      expect(pong.agentVersion).toMatch(/\d+\.\d+/);
      expect(agent.exitCode).toBeNull();
    } finally {
      second.close();
    }
  });
});
