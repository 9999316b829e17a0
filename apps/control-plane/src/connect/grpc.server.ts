import { createServer, type Http2Server, type Http2Session } from 'node:http2';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import {
  VMService,
  file_limiquantix_compute_v1_vm_service,
  reflectionV1,
  reflectionV1alpha,
} from '@lq/proto';
import { connectHandlerOptions } from './connect.mount.js';
import { ConnectAuth } from './connect-auth.js';
import {
  REFLECTION_SERVICES,
  ServerReflectionIndex,
  registerReflection,
} from './grpc-reflection.js';
import { VmServiceRoutes } from './vm-service.routes.js';

/**
 * gRPC (HTTP/2 cleartext) for VMService on its own port, served by the same handlers as Connect,
 * with gRPC server reflection (v1 and v1alpha) so grpcurl-style clients can list and describe it.
 */
@Injectable()
export class GrpcServer {
  private readonly log = new Logger('grpc');
  private server: Http2Server | undefined;
  private readonly sessions = new Set<Http2Session>();

  constructor(
    @Inject(VmServiceRoutes) private readonly routes: VmServiceRoutes,
    @Inject(ConnectAuth) private readonly auth: ConnectAuth,
  ) {}

  /** Listens on host:port (0: any free port); resolves to the bound port. */
  start(host: string, port: number): Promise<number> {
    if (this.server) {
      return Promise.reject(new Error('gRPC server already started'));
    }
    const reflection = new ServerReflectionIndex(
      [
        file_limiquantix_compute_v1_vm_service,
        reflectionV1.file_grpc_reflection_v1_reflection,
        reflectionV1alpha.file_grpc_reflection_v1alpha_reflection,
      ],
      [VMService.typeName, ...REFLECTION_SERVICES],
    );
    const handler = connectNodeAdapter({
      ...connectHandlerOptions(this.auth),
      routes: (router) => {
        this.routes.register(router);
        registerReflection(router, reflection);
      },
      grpc: true,
      grpcWeb: false,
      connect: false,
    });
    const server = createServer(handler);
    server.on('session', (session) => {
      this.sessions.add(session);
      session.once('close', () => this.sessions.delete(session));
    });
    this.server = server;
    return new Promise((resolve, reject) => {
      const failed = (err: Error) => {
        this.server = undefined;
        reject(err);
      };
      server.once('error', failed);
      server.listen(port, host, () => {
        server.off('error', failed);
        const bound = (server.address() as { port: number }).port;
        this.log.log(`gRPC on ${host}:${bound}`);
        resolve(bound);
      });
    });
  }

  /** Stops accepting, lets running calls finish, then closes idle HTTP/2 sessions. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) {
      return;
    }
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // http2 server.close() waits for every session; clients keep theirs open, so end them.
    for (const session of this.sessions) {
      session.close();
    }
    await closed;
  }
}
