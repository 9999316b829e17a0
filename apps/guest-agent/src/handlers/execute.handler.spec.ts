import { describe, expect, it } from '@jest/globals';
import { create } from '@bufbuild/protobuf';
import {
  CancelExecutionRequestSchema,
  ErrorCode,
  ExecuteRequestSchema,
  OutputStream,
  type AgentPayload,
} from '@lq/proto';
import { defaultConfig } from '../config.js';
import { AgentOpError } from '../errors.js';
import { ProcessRunner } from '../exec/process-runner.js';
import { UserResolver } from '../exec/user-resolver.js';
import { groupHasLiveMembers } from '../exec/process-group.js';
import { Logger } from '../logger.js';
import { ExecuteHandler } from './execute.handler.js';
import { CancelExecutionHandler } from './cancel-execution.handler.js';
import type { HandlerContext } from './handler.js';

const config = defaultConfig();
const runner = new ProcessRunner(config, new UserResolver(config));
const handler = new ExecuteHandler(runner);
const cancel = new CancelExecutionHandler(runner);
const events: AgentPayload[] = [];
const ctx: HandlerContext = {
  messageId: 'req-1',
  log: new Logger('silent'),
  afterReply: () => undefined,
  emit: (e) => events.push(e),
};
const outputs = () => events.filter((e) => e.case === 'execOutput').map((e) => e.value);

describe('ExecuteHandler', () => {
  it('should serve the execute request when registered', () => {
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

  it('should stream numbered output events before the response when stream_output is set', async () => {
    events.length = 0;
    const payload = await handler.handle(
      create(ExecuteRequestSchema, {
        command: 'echo one; sleep 0.3; echo two >&2; sleep 0.3; echo three',
        executionId: 'exec-1',
        streamOutput: true,
      }),
      ctx,
    );
    expect(payload.case).toBe('executeResponse');
    const got = outputs();
    expect(got.map((e) => Number(e.seq))).toEqual(got.map((_, i) => i + 1));
    expect(got.every((e) => e.executionId === 'exec-1')).toBe(true);
    const text = (stream: OutputStream) =>
      Buffer.concat(got.filter((e) => e.stream === stream).map((e) => e.data)).toString();
    expect(text(OutputStream.STDOUT)).toBe('one\nthree\n');
    expect(text(OutputStream.STDERR)).toBe('two\n');
    // Three writes 300 ms apart: three events, not one at the end.
    expect(got.length).toBe(3);
  });

  it('should refuse stream_output without an execution_id', async () => {
    const err = await handler
      .handle(create(ExecuteRequestSchema, { argv: ['true'], streamOutput: true }), ctx)
      .catch((e: unknown) => e);
    expect((err as AgentOpError).code).toBe(ErrorCode.INVALID_REQUEST);
  });

  it('should stop the process group when the execution is cancelled', async () => {
    const running = handler.handle(
      create(ExecuteRequestSchema, {
        command: 'sleep 30 & sleep 30; echo never',
        executionId: 'exec-2',
        timeoutMs: 60_000,
      }),
      ctx,
    );
    await new Promise((r) => setTimeout(r, 200));
    const answer = await cancel.handle(
      create(CancelExecutionRequestSchema, { executionId: 'exec-2' }),
      ctx,
    );
    expect(answer).toMatchObject({ case: 'cancelExecutionResponse', value: { found: true } });
    const payload = await running;
    if (payload.case !== 'executeResponse') {
      throw new Error(payload.case);
    }
    expect(payload.value.cancelled).toBe(true);
    expect(payload.value.timedOut).toBe(false);
    expect(payload.value.signal).toBe('SIGTERM');
    // The whole group, the background sleep included, is gone (zombies aside).
    let live = true;
    for (let i = 0; i < 20 && live; i++) {
      live = await groupHasLiveMembers('/proc', payload.value.pid);
      if (live) {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    expect(live).toBe(false);
    const again = await cancel.handle(
      create(CancelExecutionRequestSchema, { executionId: 'exec-2' }),
      ctx,
    );
    expect(again).toMatchObject({ value: { found: false } });
  });
});
