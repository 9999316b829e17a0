import { Module } from '@nestjs/common';
import { AuthService } from '@lq/auth';
import { AuditModule } from '../audit/audit.module.js';
import { AccessAdminController } from './access-admin.controller.js';
import { ACCESS_PROVIDERS } from './access.providers.js';
import { AdminScopeService } from './admin-scope.service.js';
import { AuthController } from './auth.controller.js';
import { VmAccessService } from './vm-access.service.js';

/**
 * Who may do what: authentication (passport bearer: API keys and JWTs), the global deny-by-
 * default guard, per-VM authorization with the bindings' limits, and the administration of
 * users, keys, projects and role bindings.
 */
@Module({
  imports: [AuditModule],
  providers: ACCESS_PROVIDERS,
  controllers: [AuthController, AccessAdminController],
  exports: [AuthService, VmAccessService, AdminScopeService],
})
export class AccessModule {}
