import { Controller, Get, Inject } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiAnswers } from '../common/openapi/api-answers.js';
import type { SigningKeysView } from '@lq/api';
import { Public } from '@lq/auth';
import { RequestSigner } from './request-signer.js';

/** The control plane's public keys, for node daemons and auditors (they are not secrets). */
@ApiTags('operations')
@Controller('api/signing-keys')
export class SigningController {
  constructor(@Inject(RequestSigner) private readonly signer: RequestSigner) {}

  @Get()
  @Public()
  @ApiOperation({
    summary:
      'The Ed25519 public keys guest requests are signed with: node daemons trust them (LQ_CONTROL_PLANE_KEYS), auditors verify intents with them',
  })
  @ApiAnswers(200, 'SigningKeysView')
  keys(): SigningKeysView {
    return { keys: this.signer.publicKeys() };
  }
}
