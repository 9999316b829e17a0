import { Module } from '@nestjs/common';
import { RequestSigner } from './request-signer.js';
import { SigningController } from './signing.controller.js';

/** The control plane's guest-request signing key (PROTOCOL.md §9 Signed requests). */
@Module({ providers: [RequestSigner], controllers: [SigningController], exports: [RequestSigner] })
export class SigningModule {}
