import type { INestApplication } from '@nestjs/common';
import type { ConnectRouterOptions } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { VMService } from '@lq/proto';
import type { NextFunction, Request, Response } from 'express';
import { hideInternalErrors } from './connect-error.interceptor.js';
import { ConnectAuth } from './connect-auth.js';
import { VmServiceRoutes } from './vm-service.routes.js';

/** Bounds a Connect or gRPC request body: no unbounded frames through the API either. */
export const CONNECT_READ_MAX_BYTES = 4 * 1024 * 1024;

/**
 * Options both transports share: bounded reads, proto3 JSON with defaults, authentication and
 * method permissions (inside), no leaked internals (outermost, so it maps the auth errors too).
 */
export function connectHandlerOptions(auth: ConnectAuth) {
  return {
    readMaxBytes: CONNECT_READ_MAX_BYTES,
    interceptors: [hideInternalErrors, auth.interceptor],
    // Platform clients read `exitCode`, `timedOut`, `stdout` even when they are 0, false or "".
    jsonOptions: { alwaysEmitImplicit: true, ignoreUnknownFields: false },
    contextValues: (req: { ip?: string; socket?: { remoteAddress?: string } }) =>
      auth.contextValues(req),
  } satisfies Partial<ConnectRouterOptions> & Record<string, unknown>;
}

const PREFIX = `/${VMService.typeName}/`;

/**
 * Mounts VMService's Connect endpoints (POST /limiquantix.compute.v1.VMService/<Method>, JSON
 * and binary, gRPC-web too) on the Nest HTTP app. Mount it before any body parser: Connect reads
 * its own bodies. Every other path goes on to Nest's routes.
 */
export function mountConnect(app: INestApplication): void {
  const routes = app.get(VmServiceRoutes);
  const nextOf = new WeakMap<object, NextFunction>();
  const handler = connectNodeAdapter({
    ...connectHandlerOptions(app.get(ConnectAuth)),
    routes: (router) => routes.register(router),
    connect: true,
    grpcWeb: true,
    grpc: false,
    // An unknown method under the prefix: Nest answers it (404 in its error format).
    fallback: (req) => nextOf.get(req)?.(),
  });
  app.use((req: Request, res: Response, next: NextFunction) => {
    if (!req.path.startsWith(PREFIX)) {
      next();
      return;
    }
    nextOf.set(req, next);
    handler(req, res);
  });
}
