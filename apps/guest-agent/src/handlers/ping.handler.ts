import { create } from '@bufbuild/protobuf';
import { PongResponseSchema, type AgentPayload } from '@lq/proto';
import type { OperationHandler } from './handler.js';

export class PingHandler implements OperationHandler<'ping'> {
  readonly requestCase = 'ping' as const;
  /** started: performance.now() at the agent's start (process-start.ts). */
  constructor(
    private readonly agentVersion: string,
    private readonly started = performance.now(),
  ) {}

  handle(): Promise<AgentPayload> {
    return Promise.resolve({
      case: 'pong',
      value: create(PongResponseSchema, {
        agentVersion: this.agentVersion,
        uptimeSeconds: (performance.now() - this.started) / 1000,
      }),
    });
  }
}
