import { Module } from '@nestjs/common';
import { NatsService } from './nats.service.js';

/** The control plane's one NATS connection. */
@Module({ providers: [NatsService], exports: [NatsService] })
export class NatsModule {}
