import type { AgentPayload } from '@lq/proto';
import { toAgentOpError } from '../errors.js';
import type { ProcessRunner } from '../exec/process-runner.js';
import type { HandlerContext, OperationHandler, RequestOf } from './handler.js';

/** execute: runs argv or a shell command in the guest (PROTOCOL.md §6 Execute). */
export class ExecuteHandler implements OperationHandler<'execute'> {
  readonly operation = 'execute' as const;
  readonly requestCase = 'execute' as const;

  constructor(private readonly runner: ProcessRunner) {}

  async handle(request: RequestOf<'execute'>, ctx: HandlerContext): Promise<AgentPayload> {
    // The program only: arguments and command lines can carry secrets.
    const program = request.argv[0] ?? 'shell command';
    try {
      const value = await this.runner.run(request);
      ctx.log.debug('execute finished', {
        id: ctx.messageId,
        program,
        pid: value.pid,
        uid: value.uid,
        exitCode: value.exitCode,
        signal: value.signal || undefined,
        timedOut: value.timedOut,
        durationMs: value.durationMs,
      });
      return { case: 'executeResponse', value };
    } catch (err) {
      throw toAgentOpError(err, `execute ${program}`);
    }
  }
}
