import { describe, expect, it } from '@jest/globals';
import { create, fromBinary } from '@bufbuild/protobuf';
import {
  AgentMessageSchema,
  ExecuteRequestSchema,
  FileHandleReadRequestSchema,
  PingRequestSchema,
  SyncRequestSchema,
  agentMessage,
  encodeAgentMessageFrame,
  type AgentMessage,
  type AgentPayload,
} from '@lq/proto';
import type { ChannelListener, HostChannel } from './channel/host-channel.js';
import { defaultConfig } from './config.js';
import { EarlyResponder } from './early-responder.js';
import { Logger } from './logger.js';
import { AGENT_VERSION, PROTOCOL_VERSION } from './version.js';
import { capabilitiesOf } from '@lq/proto/wire';
import { enabledOperations } from './config.js';

/** A channel that records what is written, paused and resumed. */
class FakeChannel implements HostChannel {
  readonly description = 'fake';
  connected = true;
  written: Buffer[] = [];
  paused = 0;
  resumed = 0;
  listener!: ChannelListener;
  async start(listener: ChannelListener): Promise<void> {
    this.listener = listener;
  }
  async write(parts: Uint8Array[]): Promise<void> {
    this.written.push(Buffer.concat(parts));
  }
  pause(): void {
    this.paused++;
  }
  resume(): void {
    this.resumed++;
  }
  async close(): Promise<void> {}
  /** The messages written, decoded by the real codec. */
  replies(): AgentMessage[] {
    return this.written.map((frame) => fromBinary(AgentMessageSchema, frame.subarray(20)));
  }
}

function setUp(config = defaultConfig()) {
  const channel = new FakeChannel();
  const early = new EarlyResponder(config, channel, new Logger('silent'));
  void channel.start(early.listener);
  return { channel, early, config };
}

const frame = (id: string, payload: AgentPayload) =>
  encodeAgentMessageFrame(agentMessage(id, payload));
const sync = (nonce: bigint, hostId = 'node-1') =>
  frame('sync-1', {
    case: 'sync',
    value: create(SyncRequestSchema, { nonce, protocolVersion: 7, hostId }),
  });
const ping = (id: string) => frame(id, { case: 'ping', value: create(PingRequestSchema) });

describe('EarlyResponder', () => {
  it('should answer a sync as the agent does, with the nonce, version, capabilities and limits', () => {
    const { channel, early, config } = setUp();
    channel.listener.onConnect();
    channel.listener.onData(sync(0xfedcba9876543210n));
    const [reply] = channel.replies();
    expect(reply!.messageId).toBe('sync-1');
    expect(reply!.timestamp).toBeDefined();
    expect(reply!.payload.case).toBe('syncResponse');
    const value = (reply!.payload as Extract<AgentPayload, { case: 'syncResponse' }>).value;
    expect(value.nonce).toBe(0xfedcba9876543210n);
    expect(value.protocolVersion).toBe(PROTOCOL_VERSION);
    expect(value.agentVersion).toBe(AGENT_VERSION);
    expect(value.capabilities).toEqual(capabilitiesOf(enabledOperations(config)));
    expect(value.limits).toMatchObject({
      maxFrameBytes: config.max_frame_bytes,
      fileChunkMaxBytes: config.files.chunk_max_bytes,
      outputLimitMaxBytes: config.exec.output_limit_max_bytes,
      execTimeoutMaxMs: config.exec.max_timeout_ms,
    });
    expect(early.state).toMatchObject({ synced: true, hostId: 'node-1', protocolVersion: 1 });
  });

  it('should answer pings, several in one chunk and one split across chunks', () => {
    const { channel, early } = setUp();
    const bytes = Buffer.concat([ping('p-1'), ping('p-2'), ping('p-3')]);
    channel.listener.onData(bytes.subarray(0, 50));
    channel.listener.onData(bytes.subarray(50));
    const replies = channel.replies();
    expect(replies.map((r) => [r.messageId, r.payload.case])).toEqual([
      ['p-1', 'pong'],
      ['p-2', 'pong'],
      ['p-3', 'pong'],
    ]);
    expect((replies[0]!.payload.value as { agentVersion: string }).agentVersion).toBe(
      AGENT_VERSION,
    );
    expect(early.state.requests).toBe(3);
  });

  it('should leave any other request to the agent, with the bytes after it, in order', async () => {
    const { channel, early } = setUp();
    let needed = false;
    void early.needed.then(() => (needed = true));
    const exec = frame('e-1', {
      case: 'execute',
      value: create(ExecuteRequestSchema, { argv: ['/bin/true'] }),
    });
    const [p1, p2] = [ping('p-1'), ping('p-2')];
    channel.listener.onData(Buffer.concat([p1, exec, p2.subarray(0, 10)]));
    channel.listener.onData(p2.subarray(10));
    await Promise.resolve();
    expect(needed).toBe(true);
    expect(channel.written).toEqual([]);
    expect(channel.paused).toBe(1);

    const got: Buffer[] = [];
    early.handOver({
      onConnect: () => undefined,
      onData: (chunk) => got.push(chunk),
      onDisconnect: () => undefined,
      betweenFrames: () => true,
      pingServed: () => undefined,
    });
    expect(channel.resumed).toBe(1);
    expect(Buffer.concat(got)).toEqual(Buffer.concat([p1, exec, p2]));
  });

  it('should leave garbage, a bad message id and a blocked ping to the agent', () => {
    for (const [bytes, config] of [
      [Buffer.from('not a frame at all, just bytes'), defaultConfig()],
      [ping('has space'), defaultConfig()],
      [
        ping('p-1'),
        { ...defaultConfig(), policy: { allowed_operations: null, blocked_operations: ['ping'] } },
      ],
    ] as const) {
      const { channel } = setUp(config as ReturnType<typeof defaultConfig>);
      channel.listener.onData(Buffer.from(bytes));
      expect(channel.written).toEqual([]);
      expect(channel.paused).toBe(1);
    }
  });

  it('should hand the channel events to the agent once it has taken over, but whole pings', () => {
    const { channel, early } = setUp();
    const seen: string[] = [];
    let between = true;
    let served = 0;
    early.handOver({
      onConnect: () => seen.push('connect'),
      onData: () => seen.push('data'),
      onDisconnect: () => seen.push('disconnect'),
      betweenFrames: () => between,
      pingServed: () => served++,
    });
    channel.listener.onConnect();
    // Whole pings between frames: answered without the agent.
    channel.listener.onData(Buffer.concat([ping('p-1'), ping('p-2')]));
    // A sync, part of a ping, or a ping while the agent is inside a frame: the agent's.
    channel.listener.onData(sync(1n));
    channel.listener.onData(ping('p-3').subarray(0, 30));
    // Other requests (one-byte and two-byte payload keys), alone or with pings before or after.
    const exec = frame('x-1', { case: 'execute', value: create(ExecuteRequestSchema) });
    const read = frame('r-1', {
      case: 'fileHandleRead',
      value: create(FileHandleReadRequestSchema, { handle: 1000n, length: 4096 }),
    });
    channel.listener.onData(exec);
    channel.listener.onData(read);
    channel.listener.onData(Buffer.concat([read, ping('p-5')]));
    channel.listener.onData(Buffer.concat([ping('p-6'), exec]));
    between = false;
    channel.listener.onData(ping('p-4'));
    channel.listener.onDisconnect('gone');
    expect(seen).toEqual(['connect', ...Array(7).fill('data'), 'disconnect']);
    expect(channel.replies().map((r) => [r.messageId, r.payload.case])).toEqual([
      ['p-1', 'pong'],
      ['p-2', 'pong'],
    ]);
    expect(served).toBe(2);
  });
});
