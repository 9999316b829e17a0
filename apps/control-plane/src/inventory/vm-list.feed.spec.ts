import { describe, expect, it } from '@jest/globals';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { NetworkInterfaceSchema, VMSchema, type VM } from '@lq/proto';
import type { NodeView } from './inventory.types.js';
import { VmListFeed, type FeedEvent, type VmListSource } from './vm-list.feed.js';
import { addressesOf, summarizeVm } from './vm-summary.js';

const node = (id: string, stale = false): NodeView => ({
  id,
  hostname: id,
  daemonVersion: '1',
  lastHeartbeatAt: new Date().toISOString(),
  stale,
  vmCount: 1,
  fileChunkMaxBytes: 1,
});

function vm(id: string, over: MessageInitShape<typeof VMSchema> = {}): VM {
  return create(VMSchema, { id, nodeId: 'node-1', agentState: 'ready', projectId: 'p', ...over });
}

describe('summarizeVm', () => {
  it('should keep what the list shows: addresses without prefix or loopback, usage, node staleness', () => {
    const s = summarizeVm(
      vm('vm-1', {
        name: 'dup',
        hostname: 'web',
        os: { prettyName: 'Debian 12' },
        telemetry: {
          cpuPercent: 12.345,
          memory: { usedBytes: 512n, totalBytes: 2048n },
          interfaces: [
            { name: 'lo', ipv4: ['127.0.0.1/8'], ipv6: ['::1/128'] },
            { name: 'eth0', ipv4: ['10.0.0.5/24'], ipv6: ['fd00::5/64'] },
          ],
        },
        lastSeen: timestampFromDate(new Date('2026-01-01T00:00:00Z')),
      }),
      new Map([['node-1', node('node-1', true)]]),
      '2025-12-31T23:00:00.000Z',
    );
    expect(s).toMatchObject({
      id: 'vm-1',
      name: 'dup',
      hostname: 'web',
      project_id: 'p',
      node_stale: true,
      os: 'Debian 12',
      ips: ['10.0.0.5', 'fd00::5'],
      cpu_percent: 12.3,
      memory_used_bytes: 512,
      memory_total_bytes: 2048,
      connected_since: '2025-12-31T23:00:00.000Z',
      last_seen: '2026-01-01T00:00:00.000Z',
    });
  });

  it('should report no connection time for an agent that is not connected, and an unknown node as stale', () => {
    const s = summarizeVm(
      vm('vm-2', { agentState: 'disconnected' }),
      new Map(),
      '2025-01-01T00:00:00Z',
    );
    expect([s.connected_since, s.node_stale, s.cpu_percent, s.project_id]).toEqual([
      null,
      true,
      null,
      'p',
    ]);
    expect(
      addressesOf([
        create(NetworkInterfaceSchema, { name: 'eth0', ipv4: ['10.0.0.1/24', '10.0.0.1/24'] }),
      ]),
    ).toEqual(['10.0.0.1']);
  });
});

describe('VmListFeed', () => {
  function source(lists: Array<VM[] | Error>): VmListSource & { reads: string[] } {
    const reads: string[] = [];
    return {
      reads,
      listVms: (projects) => {
        reads.push(JSON.stringify(projects));
        const next = lists.length > 1 ? lists.shift()! : lists[0]!;
        return next instanceof Error ? Promise.reject(next) : Promise.resolve(next);
      },
      listNodes: () => Promise.resolve([node('node-1')]),
      connectedSince: () => Promise.resolve(new Map()),
    };
  }

  const until = async (cond: () => boolean) => {
    for (let i = 0; i < 200 && !cond(); i += 1) {
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(cond()).toBe(true);
  };

  it('should share one poll per scope, send only changes, and stop when the last watcher leaves', async () => {
    const src = source([[vm('a')], [vm('a')], [vm('a'), vm('b')]]);
    const feed = new VmListFeed(src, 10);
    const one: FeedEvent[] = [];
    const two: FeedEvent[] = [];
    const stop1 = feed.subscribe(['p', 'q'], (e) => one.push(e));
    await until(() => one.length === 1);
    const stop2 = feed.subscribe(['q', 'p'], (e) => two.push(e));
    // The newcomer gets the current list at once, from the same feed.
    expect([two.length, feed.activeFeeds]).toEqual([1, 1]);
    await until(() => one.length === 2);
    expect(one.map((e) => (JSON.parse(e.json) as { vms: unknown[] }).vms.length)).toEqual([1, 2]);
    expect(two.length).toBe(2);
    stop1();
    stop2();
    expect(feed.activeFeeds).toBe(0);
    const reads = src.reads.length;
    await new Promise((r) => setTimeout(r, 40));
    expect(src.reads.length).toBeLessThanOrEqual(reads + 1);
  });

  it('should send an error event when the inventory cannot be read, then the list again', async () => {
    const down = Object.assign(new Error('database down'), { code: 'STORE_UNAVAILABLE' });
    const feed = new VmListFeed(source([[vm('a')], down, [vm('a')]]), 5);
    const events: FeedEvent[] = [];
    const stop = feed.subscribe('all', (e) => events.push(e));
    await until(() => events.length === 3);
    stop();
    expect(events.map((e) => e.kind)).toEqual(['vms', 'error', 'vms']);
    expect(JSON.parse(events[1]!.json)).toEqual({
      code: 'STORE_UNAVAILABLE',
      message: 'database down',
    });
  });
});
