import { Module } from '@nestjs/common';
import { NatsService } from './nats.service.js';
import { NodeDaemonWatch } from './node-daemon.watch.js';

/** The control plane's one NATS connection, and the watch on node daemons' heartbeats. */
@Module({ providers: [NatsService, NodeDaemonWatch], exports: [NatsService, NodeDaemonWatch] })
export class NatsModule {}
