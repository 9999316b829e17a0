import { Body, Controller, Get, HttpCode, Inject, Post, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiAnswers } from '../common/openapi/api-answers.js';
import type { Request } from 'express';
import {
  AUTH_AUDIT_HOOK,
  AuthErrorCode,
  AuthException,
  AuthService,
  Authenticated,
  passwordProblem,
  Public,
  originOf,
  type AuthAuditHook,
} from '@lq/auth';
import type { MeView, PasswordChangedView, TokenPairView } from '@lq/api';
import { ChangePasswordDto, LoginDto, RefreshDto } from './dto/access.dto.js';
import { AccessAdminService } from './access-admin.service.js';
import { AccessErrorCode, AccessException } from './access.exception.js';
import { CurrentCaller, restCaller, type Caller } from '../common/caller.js';
import { meView } from './access.views.js';

/** Sign-in with a password, token refresh, and "who am I". */
@ApiTags('authentication')
@Controller('api/auth')
export class AuthController {
  constructor(
    @Inject(AuthService) private readonly auth: AuthService,
    @Inject(AUTH_AUDIT_HOOK) private readonly hook: AuthAuditHook,
    @Inject(AccessAdminService) private readonly admin: AccessAdminService,
  ) {}

  @Post('login')
  @Public()
  @HttpCode(200)
  @ApiOperation({
    summary: 'Exchange username and password for an access token and a refresh token',
  })
  @ApiAnswers(200, 'TokenPairView', [401, 429, 503])
  login(@Body() body: LoginDto, @Req() req: Request): Promise<TokenPairView> {
    return this.audited(req, 'password', () =>
      this.auth.login(body.username, body.password, originOf(req).sourceIp),
    );
  }

  @Post('password')
  @Authenticated()
  @ApiBearerAuth()
  @HttpCode(200)
  @ApiOperation({
    summary:
      'Change your own password (the current one is required); every session of yours ends, API keys stay',
  })
  @ApiAnswers(200, 'PasswordChangedView')
  async changePassword(
    @Body() body: ChangePasswordDto,
    @Req() req: Request,
  ): Promise<PasswordChangedView> {
    const caller = restCaller(req);
    const problem = passwordProblem(body.new_password);
    if (problem) {
      throw new AccessException(AccessErrorCode.INVALID, `new_password ${problem}`);
    }
    await this.audited(req, 'password', async () => {
      await this.auth.changeOwnPassword(
        caller.principal.userId,
        body.current_password,
        body.new_password,
        caller.sourceIp,
      );
      return undefined;
    });
    await this.admin.recordSelfService(caller, 'user.change_password', {
      user: caller.principal.username,
    });
    return { username: caller.principal.username, sessions_ended: true };
  }

  @Post('refresh')
  @Public()
  @HttpCode(200)
  @ApiOperation({ summary: 'Exchange a refresh token (used once) for a new pair' })
  @ApiAnswers(200, 'TokenPairView', [401, 503])
  refresh(@Body() body: RefreshDto, @Req() req: Request): Promise<TokenPairView> {
    return this.audited(req, 'refresh_token', () => this.auth.refresh(body.refresh_token));
  }

  @Get('me')
  @Authenticated()
  @ApiBearerAuth()
  @ApiOperation({ summary: 'The caller, its bindings and what it may do where' })
  @ApiAnswers(200, 'MeView')
  me(@CurrentCaller() caller: Caller): MeView {
    return meView(caller.principal);
  }

  private async audited<T>(req: Request, method: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      if (err instanceof AuthException) {
        await this.hook.authFailed(originOf(req), method, err.message);
        throw err;
      }
      throw new AuthException(
        AuthErrorCode.AUTH_UNAVAILABLE,
        `the user store cannot be read: ${(err as Error).message}`,
      );
    }
  }
}
