import { createServer, type Http2Server } from 'node:http2';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { VmServiceRoutes } from './vm-service.routes.js';
import { CONNECT_READ_MAX_BYTES } from './connect.mount.js';

/** gRPC (HTTP/2, cleartext) for VMService, served by the same handlers as Connect. */
@Injectable()
export class GrpcServer {
  private readonly log = new Logger('grpc');
  private server: Http2Server | undefined;

  constructor(@Inject(VmServiceRoutes) private readonly routes: VmServiceRoutes) {}

  start(host: string, port: number): Promise<number> {
    const handler = connectNodeAdapter({
      routes: (router) => this.routes.register(router),
      readMaxBytes: CONNECT_READ_MAX_BYTES,
      grpc: true,
      grpcWeb: false,
      connect: false,
    });
    const server = createServer(handler);
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        const bound = (server.address() as { port: number }).port;
        this.log.log(`gRPC on ${host}:${bound}`);
        resolve(bound);
      });
    });
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }
}
