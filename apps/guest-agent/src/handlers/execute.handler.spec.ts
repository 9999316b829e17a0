import { describe, expect, it } from '@jest/globals';
import { create } from '@bufbuild/protobuf';
import { ErrorCode, ExecuteRequestSchema } from '@lq/proto';
import { defaultConfig } from '../config.js';
import { AgentOpError } from '../errors.js';
import { ProcessRunner } from '../exec/process-runner.js';
import { UserResolver } from '../exec/user-resolver.js';
import { Logger } from '../logger.js';
import { ExecuteHandler } from './execute.handler.js';
import type { HandlerContext } from './handler.js';

const config = defaultConfig();
const handler = new ExecuteHandler(new ProcessRunner(config, new UserResolver(config)));
const ctx: HandlerContext = {
  messageId: 'req-1',
  log: new Logger('silent'),
  afterReply: () => undefined,
};

describe('ExecuteHandler', () => {
  it('should serve the execute operation when registered', () => {
    expect(handler.operation).toBe('execute');
    expect(handler.requestCase).toBe('execute');
  });

  it('should answer with an executeResponse when the command runs', async () => {
    const payload = await handler.handle(
      create(ExecuteRequestSchema, { command: 'printf hi; exit 4' }),
      ctx,
    );
    expect(payload.case).toBe('executeResponse');
    if (payload.case !== 'executeResponse') {
      return;
    }
    expect(Buffer.from(payload.value.stdout).toString()).toBe('hi');
    expect(payload.value.exitCode).toBe(4);
  });

  it('should throw the AgentOpError with its code when the request is refused', async () => {
    const err = await handler
      .handle(create(ExecuteRequestSchema, { argv: ['true'], runAsUser: 'no-such-user-xyz' }), ctx)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(AgentOpError);
    expect((err as AgentOpError).code).toBe(ErrorCode.USER_NOT_FOUND);
  });
});
