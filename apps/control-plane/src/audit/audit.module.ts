import { Module } from '@nestjs/common';
import { AuditService, OutputRedactor } from '@lq/audit';
import { AUTH_AUDIT_HOOK } from '@lq/auth';
import { AuditAuthHook } from './audit-hook.js';
import { AuditController } from './audit.controller.js';
import { AUDIT_PROVIDERS } from './audit.providers.js';

/**
 * The audit trail (libs/audit wired in: one ordered writer per process), the auditors' API,
 * and the hook through which authentication failures and denials are recorded.
 */
@Module({
  providers: [...AUDIT_PROVIDERS, { provide: AUTH_AUDIT_HOOK, useClass: AuditAuthHook }],
  controllers: [AuditController],
  exports: [AuditService, OutputRedactor, AUTH_AUDIT_HOOK],
})
export class AuditModule {}
