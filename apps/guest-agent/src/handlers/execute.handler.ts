import type { AgentPayload } from '@lq/proto';
import { ErrorCode } from '@lq/proto';
import { AgentOpError, toAgentOpError } from '../errors.js';
import type { ExecRunner } from '../platform/platform.js';
import { DEFAULT_STREAMER_OPTIONS, OutputStreamer } from '../exec/output-streamer.js';
import type { HandlerContext, OperationHandler, RequestOf } from './handler.js';

/** execute: runs argv or a shell command in the guest (PROTOCOL.md §6 Execute). */
export class ExecuteHandler implements OperationHandler<'execute'> {
  readonly requestCase = 'execute' as const;

  constructor(
    private readonly runner: ExecRunner,
    /** Streamed output per execution (exec.stream_bytes_per_second). */
    private readonly streamBytesPerSecond = DEFAULT_STREAMER_OPTIONS.bytesPerSecond,
  ) {}

  async handle(request: RequestOf<'execute'>, ctx: HandlerContext): Promise<AgentPayload> {
    // The program only: arguments and command lines can carry secrets.
    const program = request.argv[0] ?? 'shell command';
    if (request.streamOutput && request.executionId === '') {
      throw new AgentOpError(ErrorCode.INVALID_REQUEST, 'stream_output needs an execution_id');
    }
    if (request.executionId.length > 128) {
      throw new AgentOpError(ErrorCode.INVALID_REQUEST, 'execution_id is longer than 128 bytes');
    }
    const streamer = request.streamOutput
      ? new OutputStreamer(
          request.executionId,
          (value) => ctx.emit({ case: 'execOutput', value }),
          {
            ...DEFAULT_STREAMER_OPTIONS,
            bytesPerSecond: this.streamBytesPerSecond,
          },
        )
      : undefined;
    try {
      const value = await this.runner.run(request, {
        executionId: request.executionId || undefined,
        onOutput: streamer ? (stream, chunk) => streamer.push(stream, chunk) : undefined,
      });
      // The last events go out before the response (the channel keeps the order).
      streamer?.close();
      ctx.log.debug('execute finished', {
        id: ctx.messageId,
        program,
        pid: value.pid,
        uid: value.uid,
        exitCode: value.exitCode,
        signal: value.signal || undefined,
        timedOut: value.timedOut,
        cancelled: value.cancelled || undefined,
        durationMs: value.durationMs,
      });
      return { case: 'executeResponse', value };
    } catch (err) {
      streamer?.close();
      throw toAgentOpError(err, `execute ${program}`);
    }
  }
}
