import { Module } from '@nestjs/common';
import { AccessModule } from '../access/access.module.js';
import { AuditModule } from '../audit/audit.module.js';
import { DownloadsModule } from '../downloads/downloads.module.js';
import { GuestOpsModule } from '../guest-ops/guest-ops.module.js';
import { AgentUpdatesController } from './agent-updates.controller.js';
import { AgentUpdatesRepository } from './agent-updates.repository.js';
import { AgentUpdatesService } from './agent-updates.service.js';
import { ReleaseImporter } from './release-importer.js';

/** Agent releases, self-updates of one VM and fleet rollouts (issue 19). */
@Module({
  imports: [AccessModule, AuditModule, DownloadsModule, GuestOpsModule],
  providers: [AgentUpdatesRepository, AgentUpdatesService, ReleaseImporter],
  controllers: [AgentUpdatesController],
})
export class AgentUpdatesModule {}
