import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { ValidationPipe, type INestApplication, type LogLevel } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { AppModule } from './app.module.js';
import type { ControlPlaneConfig } from './config/env.schema.js';
import { HttpExceptionFilter } from './common/filters/http-exception.filter.js';
import { NatsService } from './nats/nats.service.js';
import { InventorySubscriber } from './inventory/inventory.subscriber.js';
import { mountConnect } from './connect/connect.mount.js';
import { GrpcServer } from './connect/grpc.server.js';

const LEVELS: Record<ControlPlaneConfig['logLevel'], LogLevel[]> = {
  debug: ['debug', 'log', 'warn', 'error', 'fatal'],
  info: ['log', 'warn', 'error', 'fatal'],
  warn: ['warn', 'error', 'fatal'],
  error: ['error', 'fatal'],
};

export interface RunningControlPlane {
  app: INestApplication;
  httpUrl: string;
  grpcPort: number;
  close(): Promise<void>;
}

/**
 * Builds and starts the control plane: database (migrations), NATS, inventory subscriptions,
 * then REST (+ OpenAPI at /api/docs) and Connect JSON on the HTTP port, gRPC on its own.
 */
export async function startControlPlane(config: ControlPlaneConfig): Promise<RunningControlPlane> {
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config), {
    logger: LEVELS[config.logLevel],
    bodyParser: false,
  });
  // Connect first: it reads its own bodies, which a JSON body parser would consume. Then JSON
  // bodies for REST (file uploads stream, unparsed).
  mountConnect(app);
  app.useBodyParser('json', { limit: '4mb' });
  app.useGlobalPipes(
    new ValidationPipe({ whitelist: true, forbidNonWhitelisted: true, transform: true }),
  );
  app.useGlobalFilters(new HttpExceptionFilter());
  const docs = new DocumentBuilder()
    .setTitle('LimiQuantix control plane')
    .setDescription('Guest operations and inventory of the VMs of a KVM/QEMU cluster')
    .setVersion('0.1.0')
    .build();
  SwaggerModule.setup('api/docs', app, () => SwaggerModule.createDocument(app, docs));

  await app.get(NatsService).connect(`lq-control-plane-${process.pid}`);
  await app.get(InventorySubscriber).start();
  await app.listen(config.http.port, config.http.host);
  const grpc = app.get(GrpcServer);
  const grpcPort = await grpc.start(config.grpc.host, config.grpc.port);
  const address = app.getHttpServer().address() as { port: number };
  return {
    app,
    httpUrl: `http://127.0.0.1:${address.port}`,
    grpcPort,
    async close() {
      await grpc.stop();
      await app.close();
    },
  };
}
