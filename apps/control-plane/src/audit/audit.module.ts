import { Module } from '@nestjs/common';
import { AuditService, OutputRedactor } from '@lq/audit';
import { AUTH_AUDIT_HOOK } from '@lq/auth';
import { AuditAuthHook } from './audit-hook.js';
import { NatsModule } from '../nats/nats.module.js';
import { SigningModule } from '../signing/signing.module.js';
import { AuditCheckpointer } from './audit-checkpointer.js';
import { AuditController } from './audit.controller.js';
import { AuditIntegrityController } from './audit-integrity.controller.js';
import { AuditIntegrityService } from './audit-integrity.service.js';
import { AUDIT_PROVIDERS } from './audit.providers.js';

/**
 * The audit trail (libs/audit wired in: one ordered writer per process), its signed
 * checkpoints (AuditCheckpointer), the auditors' API, and the hook through which authentication failures and denials are recorded.
 */
@Module({
  imports: [NatsModule, SigningModule],
  providers: [
    ...AUDIT_PROVIDERS,
    AuditCheckpointer,
    AuditIntegrityService,
    { provide: AUTH_AUDIT_HOOK, useClass: AuditAuthHook },
  ],
  controllers: [AuditController, AuditIntegrityController],
  exports: [AuditService, OutputRedactor, AUTH_AUDIT_HOOK],
})
export class AuditModule {}
