import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Logger } from '@nestjs/common';
import type { NodeDaemonConfig } from '../config/env.schema.js';
import { AGENT_PORT_NAME } from './channel-layout.js';
import { ChannelWatcherService, type ChannelChange } from './channel-watcher.service.js';

const UUID = 'b7e2d913-22aa-4f0c-8e55-9f8e7d6c5b02';

const statusXml = (id: number) =>
  `<domstatus state='running'><domain type='kvm' id='${id}'><name>dup</name><uuid>${UUID}</uuid></domain></domstatus>`;

function listen(path: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(path, () => resolve(server));
  });
}

describe('ChannelWatcherService with real sockets', () => {
  let dir: string;
  let channels: string;
  let run: string;
  const servers: Server[] = [];
  let watcher: ChannelWatcherService;
  const added: ChannelChange[] = [];

  beforeAll(async () => {
    Logger.overrideLogger(false);
    dir = mkdtempSync(join(tmpdir(), 'lq-watch-'));
    channels = join(dir, 'ch');
    run = join(dir, 'run');
    mkdirSync(join(channels, 'domain-4-dup'), { recursive: true });
    mkdirSync(run);
    servers.push(await listen(join(channels, 'domain-4-dup', AGENT_PORT_NAME)));
    servers.push(await listen(join(channels, 'vm-9.sock')));
    watcher = new ChannelWatcherService({
      channelDirs: [channels],
      libvirtRunDir: run,
      rescanIntervalMs: 3_600_000,
    } as NodeDaemonConfig);
    watcher.on('added', (c: ChannelChange) => added.push(c));
  });

  afterAll(() => {
    watcher?.onApplicationShutdown();
    for (const s of servers) {
      s.close();
    }
    rmSync(dir, { recursive: true, force: true });
    Logger.overrideLogger(['log', 'warn', 'error', 'fatal']);
  });

  it('should leave a libvirt domain out until its status file names it, then use its UUID', async () => {
    await watcher.scan();
    expect(added).toEqual([{ vmId: 'vm-9', path: join(channels, 'vm-9.sock'), name: '' }]);

    // A status file of another run of a domain named dup (another runtime id) is not it.
    writeFileSync(join(run, 'dup.xml'), statusXml(3));
    await watcher.scan();
    expect(added).toHaveLength(1);

    writeFileSync(join(run, 'dup.xml'), statusXml(4));
    await watcher.scan();
    expect(added[1]).toEqual({
      vmId: UUID,
      path: join(channels, 'domain-4-dup', AGENT_PORT_NAME),
      name: 'dup',
    });
    expect([...watcher.current.keys()].sort()).toEqual([UUID, 'vm-9']);
  });
});
