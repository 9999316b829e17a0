import type { AgentPayload, RequestCase, RequestOf } from '@lq/proto';
import type { Logger } from '../logger.js';
import type { BufferPool } from '../memory/buffer-pool.js';

/** The request payload cases an operation handler can serve: those of the operation table. */
export type { RequestCase, RequestOf };

export interface HandlerContext {
  /** The request's id, for logs and for naming things (temp files, process tags). */
  messageId: string;
  log: Logger;
  /** Runs fn once the reply has been handed to the channel (shutdown replies before acting). */
  afterReply(fn: () => void): void;
  /** Sends an event (e.g. an ExecOutputEvent) while the request is being served. */
  emit(payload: AgentPayload): void;
  /** Chunk buffers to lend; release one in afterReply (the reply carries its bytes). */
  buffers?: BufferPool;
}

/**
 * One operation: checks its input, does the work, returns the response payload. Failures are
 * thrown as AgentOpError (anything else is mapped by the dispatcher). Policy (allowed/blocked
 * operations), the frozen state and result retention come from the operation table
 * (@lq/proto GUEST_OPERATION_TABLE) and are the dispatcher's.
 */
export interface OperationHandler<C extends RequestCase = RequestCase> {
  readonly requestCase: C;
  /**
   * True when nothing reads the request's bytes once handle()'s promise has settled (no work
   * left running with a view of them), so the buffer the request arrived in can be reused.
   */
  readonly doneWithRequestAtAnswer?: boolean;
  handle(request: RequestOf<C>, ctx: HandlerContext): Promise<AgentPayload>;
  /**
   * The reply made at once when the request needs nothing to wait for (a small read of a local
   * file), or undefined: then handle() serves it. Throws what handle() would reject with. Saves
   * the dispatcher its promises on the hottest path; results to retain always go by handle().
   */
  handleNow?(request: RequestOf<C>, ctx: HandlerContext): AgentPayload | undefined;
}
