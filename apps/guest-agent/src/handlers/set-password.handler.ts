import { create } from '@bufbuild/protobuf';
import { SetUserPasswordResponseSchema, type AgentPayload } from '@lq/proto';
import type { AgentConfig } from '../config.js';
import type { UserResolver } from '../exec/user-resolver.js';
import { currentPlatform } from '../platform/current-platform.js';
import type { AccountControl, GuestPlatform } from '../platform/platform.js';
import type { HandlerContext, OperationHandler, RequestOf } from './handler.js';

/**
 * password.set through the platform's account control (Linux: chpasswd with the secret on
 * stdin; Windows: net user). The secret never reaches a log or an error message.
 */
export class SetUserPasswordHandler implements OperationHandler<'setUserPassword'> {
  readonly requestCase = 'setUserPassword' as const;
  private readonly accounts: AccountControl;

  constructor(
    config: AgentConfig,
    users: UserResolver,
    platform: Pick<GuestPlatform, 'accounts'> = currentPlatform,
  ) {
    this.accounts = platform.accounts(config, users);
  }

  async handle(request: RequestOf<'setUserPassword'>, ctx: HandlerContext): Promise<AgentPayload> {
    await this.accounts.setPassword(request);
    ctx.log.info('password set', { user: request.username });
    return { case: 'setUserPasswordResponse', value: create(SetUserPasswordResponseSchema, {}) };
  }
}
