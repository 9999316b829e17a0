import { Module } from '@nestjs/common';
import { AccessModule } from '../access/access.module.js';
import { AuditModule } from '../audit/audit.module.js';
import { GuestOpsModule } from '../guest-ops/guest-ops.module.js';
import { InventoryModule } from '../inventory/inventory.module.js';
import { NatsModule } from '../nats/nats.module.js';
import { ExecutionDriver } from './execution-driver.js';
import { ExecutionFollower } from './execution-follower.js';
import { ExecutionsController } from './executions.controller.js';
import { ExecutionsRepository } from './executions.repository.js';
import { ExecutionsService } from './executions.service.js';
import { ExecOutputFeeds } from './output-feed.js';

/** Asynchronous executions: started at once, output stored and followed, cancellable. */
@Module({
  imports: [AccessModule, AuditModule, GuestOpsModule, InventoryModule, NatsModule],
  providers: [
    ExecutionsRepository,
    ExecOutputFeeds,
    ExecutionDriver,
    ExecutionFollower,
    ExecutionsService,
  ],
  controllers: [ExecutionsController],
  exports: [ExecutionsService, ExecutionDriver],
})
export class ExecutionsModule {}
