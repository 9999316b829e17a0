import { Module, type DynamicModule } from '@nestjs/common';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from './config/env.schema.js';
import { DatabaseModule } from './database/database.module.js';
import { NatsService } from './nats/nats.service.js';
import { InventoryRepository } from './inventory/inventory.repository.js';
import { InventoryService } from './inventory/inventory.service.js';
import { InventorySubscriber } from './inventory/inventory.subscriber.js';
import { InventoryController } from './inventory/inventory.controller.js';
import { VmGuestService } from './guest-ops/vm-guest.service.js';
import { VmGuestController } from './guest-ops/vm-guest.controller.js';
import { HealthController } from './health/health.controller.js';
import { MetricsService } from './metrics/metrics.service.js';
import { MetricsController } from './metrics/metrics.controller.js';
import { VmServiceRoutes } from './connect/vm-service.routes.js';
import { GrpcServer } from './connect/grpc.server.js';
import { ConnectAuth } from './connect/connect-auth.js';
import { AUDIT_PROVIDERS } from './audit/audit.providers.js';
import { AuditController } from './audit/audit.controller.js';
import { ACCESS_PROVIDERS } from './access/access.providers.js';
import { AuthController } from './access/auth.controller.js';
import { AccessAdminController } from './access/access-admin.controller.js';
import { ExecutionsController } from './executions/executions.controller.js';
import { ExecutionsRepository } from './executions/executions.repository.js';
import { ExecutionsService } from './executions/executions.service.js';
import { RunsController } from './runs/runs.controller.js';
import { RunsRepository } from './runs/runs.repository.js';
import { RunsService } from './runs/runs.service.js';
import { CONSOLE_PROVIDERS } from './console/console.providers.js';
import { ConsoleVmsController } from './console/console-vms.controller.js';
import { ConsoleController } from './console/console.controller.js';
import { DownloadsController } from './downloads/downloads.controller.js';
import { DOWNLOADS_PROVIDERS } from './downloads/downloads.providers.js';

/** Every REST controller (a test walks their routes for a permission or @Public()). */
export const CONTROLLERS = [
  // Before InventoryController: /api/vms/stream must match ahead of /api/vms/:id.
  ConsoleVmsController,
  InventoryController,
  VmGuestController,
  HealthController,
  MetricsController,
  AuthController,
  AccessAdminController,
  AuditController,
  ExecutionsController,
  RunsController,
  DownloadsController,
  // Last: its catch-all serves the web console for every path no API route matched.
  ConsoleController,
];

@Module({})
export class AppModule {
  static forRoot(config: ControlPlaneConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [DatabaseModule],
      providers: [
        { provide: CONTROL_PLANE_CONFIG, useValue: config },
        NatsService,
        InventoryRepository,
        InventoryService,
        InventorySubscriber,
        VmGuestService,
        MetricsService,
        VmServiceRoutes,
        GrpcServer,
        ConnectAuth,
        ExecutionsRepository,
        ExecutionsService,
        RunsRepository,
        RunsService,
        ...AUDIT_PROVIDERS,
        ...ACCESS_PROVIDERS,
        ...CONSOLE_PROVIDERS,
        ...DOWNLOADS_PROVIDERS,
      ],
      controllers: CONTROLLERS,
      exports: [CONTROL_PLANE_CONFIG],
      global: true,
    };
  }
}
