import { Module } from '@nestjs/common';
import { AccessModule } from '../access/access.module.js';
import { AuditModule } from '../audit/audit.module.js';
import { ExecutionsModule } from '../executions/executions.module.js';
import { GuestOpsModule } from '../guest-ops/guest-ops.module.js';
import { RunsController } from './runs.controller.js';
import { RunsRepository } from './runs.repository.js';
import { RunsService } from './runs.service.js';

/** Fleet runs: one command over many VMs, with a concurrency and an error budget. */
@Module({
  imports: [AccessModule, AuditModule, ExecutionsModule, GuestOpsModule],
  providers: [RunsRepository, RunsService],
  controllers: [RunsController],
})
export class RunsModule {}
