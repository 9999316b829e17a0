import type { AgentPayload } from '@lq/proto';
import type { Quiescer } from '../quiesce/quiescer.js';
import type { OperationHandler, RequestOf } from './handler.js';

/** quiesce: pre-freeze hooks, fsfreeze, auto-thaw watchdog (PROTOCOL.md §6). */
export class QuiesceHandler implements OperationHandler<'quiesce'> {
  readonly requestCase = 'quiesce' as const;

  constructor(private readonly quiescer: Quiescer) {}

  async handle(request: RequestOf<'quiesce'>): Promise<AgentPayload> {
    const value = await this.quiescer.quiesce(request.mountPoints, request.timeoutSeconds);
    return { case: 'quiesceResponse', value };
  }
}

/** thaw: served while frozen (the point of it). */
export class ThawHandler implements OperationHandler<'thaw'> {
  readonly requestCase = 'thaw' as const;

  constructor(private readonly quiescer: Quiescer) {}

  async handle(): Promise<AgentPayload> {
    return { case: 'thawResponse', value: await this.quiescer.thaw('request') };
  }
}

/** quiesce status: frozen or not, which mounts, until when. */
export class QuiesceStatusHandler implements OperationHandler<'quiesceStatus'> {
  readonly requestCase = 'quiesceStatus' as const;

  constructor(private readonly quiescer: Quiescer) {}

  handle(): Promise<AgentPayload> {
    return Promise.resolve({ case: 'quiesceStatusResponse', value: this.quiescer.status() });
  }
}
