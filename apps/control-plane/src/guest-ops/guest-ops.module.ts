import { Module } from '@nestjs/common';
import { AccessModule } from '../access/access.module.js';
import { AuditModule } from '../audit/audit.module.js';
import { InventoryModule } from '../inventory/inventory.module.js';
import { MetricsModule } from '../metrics/metrics.module.js';
import { NatsModule } from '../nats/nats.module.js';
import { SigningModule } from '../signing/signing.module.js';
import { VmGuestController } from './vm-guest.controller.js';
import { GuestOperationRunner } from './guest-operation.runner.js';

/** Guest operations: the one audited path from a caller to a VM's agent, and its REST routes. */
@Module({
  imports: [AccessModule, AuditModule, InventoryModule, MetricsModule, NatsModule, SigningModule],
  providers: [GuestOperationRunner],
  controllers: [VmGuestController],
  exports: [GuestOperationRunner],
})
export class GuestOpsModule {}
