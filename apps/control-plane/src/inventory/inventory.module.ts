import { Module } from '@nestjs/common';
import { AccessModule } from '../access/access.module.js';
import { AuditModule } from '../audit/audit.module.js';
import { MetricsModule } from '../metrics/metrics.module.js';
import { NatsModule } from '../nats/nats.module.js';
import { TelemetryModule } from '../telemetry/telemetry.module.js';
import { AgentReleaseCatalog } from '../downloads/agent-release-catalog.js';
import { DownloadsModule } from '../downloads/downloads.module.js';
import { FleetController } from './fleet.controller.js';
import { InventoryController } from './inventory.controller.js';
import { InventoryMetrics } from './inventory.metrics.js';
import { InventoryRepository } from './inventory.repository.js';
import { InventoryService } from './inventory.service.js';
import { InventorySubscriber } from './inventory.subscriber.js';
import { VmClaimsService } from './vm-claims.service.js';
import { VmListFeed } from './vm-list.feed.js';
import { VmListStreamController } from './vm-list-stream.controller.js';
import { VmPlacementController } from './vm-placement.controller.js';
import { VmPlacementService } from './vm-placement.service.js';
import { VmReadService } from './vm-read.service.js';

/**
 * The inventory: nodes and VMs as node daemons report them (heartbeats, events, telemetry),
 * which node owns each VM, its project and labels, and the reads every transport makes,
 * the fleet dashboard's among them (over the telemetry history).
 */
@Module({
  imports: [AccessModule, AuditModule, MetricsModule, NatsModule, DownloadsModule, TelemetryModule],
  providers: [
    InventoryRepository,
    InventoryService,
    InventorySubscriber,
    InventoryMetrics,
    VmClaimsService,
    VmReadService,
    VmPlacementService,
    {
      provide: VmListFeed,
      inject: [InventoryService, AgentReleaseCatalog],
      useFactory: (inventory: InventoryService, releases: AgentReleaseCatalog) =>
        new VmListFeed({
          listVms: (projects) => inventory.listVms(projects),
          listNodes: () => inventory.listNodes(),
          connectedSince: (ids) => inventory.connectedSince(ids),
          latestAgent: () => releases.latest(),
        }),
    },
  ],
  // The stream first: /api/vms/stream must match ahead of /api/vms/:id.
  controllers: [
    VmListStreamController,
    InventoryController,
    FleetController,
    VmPlacementController,
  ],
  exports: [InventoryService, VmReadService, InventorySubscriber],
})
export class InventoryModule {}
