import { Module } from '@nestjs/common';
import { AccessModule } from '../access/access.module.js';
import { AuditModule } from '../audit/audit.module.js';
import { ExecutionsModule } from '../executions/executions.module.js';
import { GuestOpsModule } from '../guest-ops/guest-ops.module.js';
import { InventoryModule } from '../inventory/inventory.module.js';
import { MetricsModule } from '../metrics/metrics.module.js';
import { TelemetryModule } from '../telemetry/telemetry.module.js';
import { ConnectAuth } from './connect-auth.js';
import { GrpcServer } from './grpc.server.js';
import { VmServiceRoutes } from './vm-service.routes.js';

/** VMService over Connect (JSON and binary, on the HTTP app) and gRPC (its own HTTP/2 port). */
@Module({
  imports: [
    AccessModule,
    AuditModule,
    ExecutionsModule,
    GuestOpsModule,
    InventoryModule,
    MetricsModule,
    TelemetryModule,
  ],
  providers: [ConnectAuth, VmServiceRoutes, GrpcServer],
  exports: [VmServiceRoutes, GrpcServer, ConnectAuth],
})
export class ConnectModule {}
