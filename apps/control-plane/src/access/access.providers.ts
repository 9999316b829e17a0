import type { Provider } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { DataSource } from 'typeorm';
import {
  AccessGuard,
  AuthRepository,
  AuthService,
  BearerStrategy,
  DEFAULT_PASSWORD_PARAMS,
} from '@lq/auth';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';
import { AccessAdminService } from './access-admin.service.js';
import { VmAccessService } from './vm-access.service.js';
import { AdminScopeService } from './admin-scope.service.js';

/** libs/auth wired into Nest, with the global deny-by-default guard. */
export const ACCESS_PROVIDERS: Provider[] = [
  {
    provide: AuthRepository,
    inject: [DataSource],
    useFactory: (ds: DataSource) => new AuthRepository(ds),
  },
  {
    provide: AuthService,
    inject: [AuthRepository, CONTROL_PLANE_CONFIG],
    useFactory: async (repo: AuthRepository, config: ControlPlaneConfig) => {
      const auth = new AuthService(repo, {
        ...config.auth,
        passwordParams: { ...DEFAULT_PASSWORD_PARAMS, logN: config.auth.scryptLogN },
      });
      await auth.init();
      return auth;
    },
  },
  BearerStrategy,
  { provide: APP_GUARD, useClass: AccessGuard },
  VmAccessService,
  AdminScopeService,
  AccessAdminService,
];
