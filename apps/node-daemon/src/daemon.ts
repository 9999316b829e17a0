import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { INestApplicationContext, LogLevel } from '@nestjs/common';
import { AppModule } from './app.module.js';
import type { NodeDaemonConfig } from './config/env.schema.js';
import { NatsService } from './nats/nats.service.js';
import { ChannelWatcherService, type ChannelChange } from './channels/channel-watcher.service.js';
import { AgentRegistryService } from './agents/agent-registry.service.js';
import { GuestRelayNatsTransport } from './relay/guest-relay.nats.js';
import { InventoryPublisherService } from './inventory/inventory-publisher.service.js';

const LEVELS: Record<NodeDaemonConfig['logLevel'], LogLevel[]> = {
  debug: ['debug', 'log', 'warn', 'error', 'fatal'],
  info: ['log', 'warn', 'error', 'fatal'],
  warn: ['warn', 'error', 'fatal'],
  error: ['error', 'fatal'],
};

/**
 * Starts a node daemon: NATS first (so nothing is found that cannot be served), then the
 * channel watcher feeding the agent registry, then the relay and the inventory publisher.
 */
export async function startNodeDaemon(config: NodeDaemonConfig): Promise<INestApplicationContext> {
  const app = await NestFactory.createApplicationContext(AppModule.forRoot(config), {
    logger: LEVELS[config.logLevel],
  });
  await app.get(NatsService).connect();
  const agents = app.get(AgentRegistryService);
  const watcher = app.get(ChannelWatcherService);
  watcher.on('added', (c: ChannelChange) => agents.add(c.vmId, c.path, c.name));
  watcher.on('removed', (c: ChannelChange) => agents.remove(c.vmId, 'channel socket gone'));
  app.get(GuestRelayNatsTransport).listen();
  app.get(InventoryPublisherService).start();
  await watcher.start();
  return app;
}
