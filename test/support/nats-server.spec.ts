import { createConnection, createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { freePort, startNatsServer, type RunningNats } from './nats-server.js';

interface ServerInfo {
  port: number;
  server_name?: string;
  max_payload: number;
  jetstream?: boolean;
}

/** Connects with a bare TCP socket and reads the server's first line (`INFO {...}`). */
function readInfo(port: number): Promise<ServerInfo> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let data = '';
    socket.setTimeout(2000, () => {
      socket.destroy();
      reject(new Error(`no INFO line within 2 s (got ${JSON.stringify(data)})`));
    });
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString();
      const end = data.indexOf('\r\n');
      if (end >= 0) {
        socket.destroy();
        const line = data.slice(0, end);
        if (!line.startsWith('INFO ')) {
          reject(new Error(`first line is not INFO: ${line}`));
          return;
        }
        resolve(JSON.parse(line.slice('INFO '.length)) as ServerInfo);
      }
    });
    socket.once('error', reject);
  });
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('freePort', () => {
  it('should return a port that can be bound on 127.0.0.1 when called', async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    expect(port).toBeLessThan(65536);
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    await new Promise((resolve) => server.close(resolve));
  });

  it('should never hand out the same port twice in one process when asked 2,000 times', async () => {
    // The deploy test took a server's client, monitor and route ports this way, and twice got
    // the same port back (CI, 2026-12-05): the kernel reuses a port closed a moment ago.
    // 2,000 draws from ~28,000 ephemeral ports: the kernel alone repeats some with near certainty.
    const ports: number[] = [];
    for (let round = 0; round < 40; round++) {
      ports.push(...(await Promise.all(Array.from({ length: 50 }, () => freePort()))));
    }
    expect(new Set(ports).size).toBe(ports.length);
  });
});

describe('startNatsServer', () => {
  let nats: RunningNats;

  beforeAll(async () => {
    nats = await startNatsServer();
  });

  afterAll(async () => {
    await nats?.stop();
  });

  it('should accept a connection and send INFO when started with defaults', async () => {
    expect(nats.url).toBe(`nats://127.0.0.1:${nats.port}`);
    expect(alive(nats.pid)).toBe(true);
    const info = await readInfo(nats.port);
    expect(info.port).toBe(nats.port);
    expect(nats.storeDir).toBeUndefined();
  });

  it('should come back on the same port with a new process when restarted', async () => {
    const { port, pid } = nats;
    await nats.restart();
    expect(nats.port).toBe(port);
    expect(nats.url).toBe(`nats://127.0.0.1:${port}`);
    expect(nats.pid).not.toBe(pid);
    expect(alive(pid)).toBe(false);
    expect((await readInfo(port)).port).toBe(port);
  });
});

describe('startNatsServer options', () => {
  it('should apply config text and JetStream, and stop for good, when asked for', async () => {
    const port = await freePort();
    const nats = await startNatsServer({
      port,
      config: 'server_name: lq-test\nmax_payload: 65536\n',
      jetstream: true,
    });
    try {
      expect(nats.port).toBe(port);
      const info = await readInfo(port);
      expect(info.server_name).toBe('lq-test');
      expect(info.max_payload).toBe(65536);
      expect(info.jetstream).toBe(true);
      expect(nats.storeDir).toMatch(/lq-nats-/);
    } finally {
      await nats.stop();
    }
    expect(alive(nats.pid)).toBe(false);
    expect(await refused(port)).toBe(true);
    await expect(nats.restart()).rejects.toThrow(/stopped/);
  });

  it('should reject with its log when the server cannot start', async () => {
    await expect(startNatsServer({ args: ['--no-such-flag'] })).rejects.toThrow(
      /nats-server exited .*before accepting connections[^]*no-such-flag/,
    );
  });

  it('should say how to install nats-server when the binary is missing', async () => {
    await expect(startNatsServer({ binary: '/nonexistent/nats-server' })).rejects.toThrow(
      /apt-get install nats-server/,
    );
  });
});
