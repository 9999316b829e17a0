import { Module, type DynamicModule, type Type } from '@nestjs/common';
import { MODULE_METADATA } from '@nestjs/common/constants.js';
import { AccessModule } from './access/access.module.js';
import { AgentUpdatesModule } from './agent-updates/agent-updates.module.js';
import { AuditModule } from './audit/audit.module.js';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from './config/env.schema.js';
import { ConnectModule } from './connect/connect.module.js';
import { ConsoleModule } from './console/console.module.js';
import { DatabaseModule } from './database/database.module.js';
import { DownloadsModule } from './downloads/downloads.module.js';
import { ExecutionsModule } from './executions/executions.module.js';
import { GuestOpsModule } from './guest-ops/guest-ops.module.js';
import { HealthModule } from './health/health.module.js';
import { InventoryModule } from './inventory/inventory.module.js';
import { MetricsModule } from './metrics/metrics.module.js';
import { NatsModule } from './nats/nats.module.js';
import { RunsModule } from './runs/runs.module.js';
import { SigningModule } from './signing/signing.module.js';

/**
 * The modules, one per concept, in the order their routes are registered: the console's
 * catch-all must come last (ARCHITECTURE.md has the layers and who may import whom).
 */
export const MODULES: Type[] = [
  AuditModule,
  AccessModule,
  MetricsModule,
  NatsModule,
  SigningModule,
  InventoryModule,
  GuestOpsModule,
  ExecutionsModule,
  RunsModule,
  AgentUpdatesModule,
  ConnectModule,
  HealthModule,
  DownloadsModule,
  ConsoleModule,
];

/** Every REST controller (a test walks their routes for a permission or @Public()). */
export const CONTROLLERS: Type[] = MODULES.flatMap(
  (m) => (Reflect.getMetadata(MODULE_METADATA.CONTROLLERS, m) as Type[] | undefined) ?? [],
);

/** The validated configuration, visible to every module. */
@Module({})
class ConfigModule {
  static forRoot(config: ControlPlaneConfig): DynamicModule {
    return {
      module: ConfigModule,
      providers: [{ provide: CONTROL_PLANE_CONFIG, useValue: config }],
      exports: [CONTROL_PLANE_CONFIG],
      global: true,
    };
  }
}

@Module({})
export class AppModule {
  static forRoot(config: ControlPlaneConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [ConfigModule.forRoot(config), DatabaseModule, ...MODULES],
    };
  }
}
