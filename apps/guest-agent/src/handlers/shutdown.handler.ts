import { spawn } from 'node:child_process';
import { create } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import {
  ErrorCode,
  ShutdownMode,
  ShutdownResponseSchema,
  type AgentPayload,
  type ShutdownRequest,
} from '@lq/proto';
import type { AgentConfig } from '../config.js';
import { AgentOpError } from '../errors.js';
import { currentPlatform } from '../platform/current-platform.js';
import type { GuestPlatform } from '../platform/platform.js';
import type { HandlerContext, OperationHandler } from './handler.js';

const MAX_DELAY_SECONDS = 3600;

/**
 * Replies first, then runs the platform's command for the mode (Linux: commands.poweroff /
 * reboot / halt; Windows: shutdown.exe), because once the guest goes down nothing more can be
 * sent. Tests point the commands at a double.
 */
export class ShutdownHandler implements OperationHandler<'shutdown'> {
  readonly requestCase = 'shutdown' as const;
  private pending: NodeJS.Timeout | undefined;

  constructor(
    private readonly config: AgentConfig,
    private readonly platform: Pick<GuestPlatform, 'shutdownArgv'> = currentPlatform,
  ) {}

  handle(request: ShutdownRequest, ctx: HandlerContext): Promise<AgentPayload> {
    if (request.delaySeconds > MAX_DELAY_SECONDS) {
      throw new AgentOpError(
        ErrorCode.INVALID_REQUEST,
        `delay_seconds ${request.delaySeconds} exceeds ${MAX_DELAY_SECONDS}`,
      );
    }
    const mode = request.mode === ShutdownMode.UNSPECIFIED ? ShutdownMode.POWEROFF : request.mode;
    const argv = this.commandFor(mode);
    if (this.pending) {
      throw new AgentOpError(ErrorCode.BUSY, 'a shutdown is already scheduled');
    }
    const at = Date.now() + request.delaySeconds * 1000;
    ctx.afterReply(() => {
      this.pending = setTimeout(() => this.run(argv, ctx), Math.max(0, at - Date.now()));
    });
    ctx.log.info('shutdown scheduled', {
      mode: ShutdownMode[mode],
      argv,
      delaySeconds: request.delaySeconds,
    });
    return Promise.resolve({
      case: 'shutdownResponse',
      value: create(ShutdownResponseSchema, { mode, scheduledAt: timestampFromMs(at) }),
    });
  }

  private commandFor(mode: ShutdownMode): string[] {
    switch (mode) {
      case ShutdownMode.POWEROFF:
      case ShutdownMode.REBOOT:
      case ShutdownMode.HALT:
      case ShutdownMode.UNSPECIFIED:
        return this.platform.shutdownArgv(this.config, mode);
      default:
        throw new AgentOpError(ErrorCode.INVALID_REQUEST, `unknown shutdown mode ${String(mode)}`);
    }
  }

  private run(argv: string[], ctx: HandlerContext): void {
    this.pending = undefined;
    const [program, ...args] = argv;
    const child = spawn(program!, args, { stdio: 'ignore', detached: true });
    child.on('error', (err) =>
      ctx.log.error('shutdown command failed to start', { argv, error: err.message }),
    );
    child.on('exit', (code, signal) => {
      if (code !== 0) {
        ctx.log.error('shutdown command failed', { argv, code, signal });
      }
    });
    child.unref();
  }
}
