import { Module, type DynamicModule } from '@nestjs/common';
import { NODE_DAEMON_CONFIG, type NodeDaemonConfig } from './config/env.schema.js';
import { NatsService } from './nats/nats.service.js';
import { ChannelWatcherService } from './channels/channel-watcher.service.js';
import { AgentRegistryService } from './agents/agent-registry.service.js';
import { GuestRelayService } from './relay/guest-relay.service.js';
import { RequestVerifier } from './relay/request-verifier.js';
import { GuestRelayNatsTransport } from './relay/guest-relay.nats.js';
import { InventoryPublisherService } from './inventory/inventory-publisher.service.js';

@Module({})
export class AppModule {
  static forRoot(config: NodeDaemonConfig): DynamicModule {
    return {
      module: AppModule,
      providers: [
        { provide: NODE_DAEMON_CONFIG, useValue: config },
        NatsService,
        ChannelWatcherService,
        AgentRegistryService,
        GuestRelayService,
        RequestVerifier,
        GuestRelayNatsTransport,
        InventoryPublisherService,
      ],
    };
  }
}
