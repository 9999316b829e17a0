import { Module } from '@nestjs/common';
import { InventoryModule } from '../inventory/inventory.module.js';
import { NatsModule } from '../nats/nats.module.js';
import { HealthController } from './health.controller.js';

/** /health: whether the database (through the inventory) and NATS answer. */
@Module({ imports: [InventoryModule, NatsModule], controllers: [HealthController] })
export class HealthModule {}
