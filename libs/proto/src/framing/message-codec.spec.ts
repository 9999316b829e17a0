import { randomBytes } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { create, equals, fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  AgentMessageSchema,
  ExecuteResponseSchema,
  FileReadResponseSchema,
  FileWriteRequestSchema,
} from '../gen/limiquantix/agent/v1/agent_pb.js';
import { AgentMessageDecoder, agentMessage, encodeAgentMessage } from './message-codec.js';
import { FrameDecoder } from './frame-codec.js';

describe('encodeAgentMessage', () => {
  const cases = [
    agentMessage('r1', {
      case: 'fileReadResponse',
      value: create(FileReadResponseSchema, {
        data: randomBytes(200_000),
        eof: true,
        totalSize: 200_000n,
        mode: 0o100644,
      }),
    }),
    agentMessage('w1', {
      case: 'fileWrite',
      value: create(FileWriteRequestSchema, {
        path: '/tmp/x',
        offset: 5n,
        data: randomBytes(70_000),
        uploadId: 'u',
        commit: true,
        mode: 0o600,
      }),
    }),
    agentMessage('e1', {
      case: 'executeResponse',
      value: create(ExecuteResponseSchema, {
        exitCode: 0,
        stdout: randomBytes(20_000),
        stderr: randomBytes(30_000),
        pid: 42,
      }),
    }),
    agentMessage('e2', {
      case: 'executeResponse',
      value: create(ExecuteResponseSchema, {
        stdout: new Uint8Array(0),
        stderr: randomBytes(40_000),
        signal: 'SIGKILL',
      }),
    }),
  ];

  it('should decode spliced bulk fields exactly like toBinary output when data is large', () => {
    for (const message of cases) {
      const parts = encodeAgentMessage(message);
      expect(parts.length).toBeGreaterThan(2);
      const payloads = new FrameDecoder().push(Buffer.concat(parts));
      expect(payloads).toHaveLength(1);
      const decoded = fromBinary(AgentMessageSchema, payloads[0]!);
      expect(equals(AgentMessageSchema, decoded, message)).toBe(true);
      expect(
        equals(
          AgentMessageSchema,
          fromBinary(AgentMessageSchema, toBinary(AgentMessageSchema, message)),
          decoded,
        ),
      ).toBe(true);
    }
  });

  it('should leave the message unchanged after encoding', () => {
    const message = cases[0]!;
    const before = toBinary(AgentMessageSchema, message);
    encodeAgentMessage(message);
    expect(Buffer.from(toBinary(AgentMessageSchema, message)).equals(Buffer.from(before))).toBe(
      true,
    );
  });

  it('should send a small message as one buffer', () => {
    const parts = encodeAgentMessage(agentMessage('p', { case: 'ping', value: {} as never }));
    expect(parts).toHaveLength(1);
    expect(new AgentMessageDecoder().push(parts[0]!)[0]?.messageId).toBe('p');
  });
});
