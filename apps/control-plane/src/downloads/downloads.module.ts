import { Module } from '@nestjs/common';
import { DownloadsController } from './downloads.controller.js';
import { DOWNLOADS_PROVIDERS } from './downloads.providers.js';

/** The guest agent's release files, public, for guests at first boot (install-agent.sh). */
@Module({
  providers: DOWNLOADS_PROVIDERS,
  controllers: [DownloadsController],
  exports: DOWNLOADS_PROVIDERS,
})
export class DownloadsModule {}
