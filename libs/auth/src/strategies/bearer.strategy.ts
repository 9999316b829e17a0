import { Inject, Injectable } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import { Strategy } from 'passport-http-bearer';
import { AuthService } from '../auth.service.js';
import type { Principal } from '../principal.js';

/**
 * passport's bearer strategy: `Authorization: Bearer <API key or access JWT>`, resolved by
 * AuthService (the same call the Connect and gRPC interceptor makes).
 */
@Injectable()
export class BearerStrategy extends PassportStrategy(Strategy, 'bearer') {
  constructor(@Inject(AuthService) private readonly auth: AuthService) {
    super();
  }

  validate(token: string): Promise<Principal> {
    return this.auth.authenticate(token);
  }
}
