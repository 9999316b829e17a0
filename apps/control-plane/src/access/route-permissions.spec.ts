import 'reflect-metadata';
import { describe, expect, it } from '@jest/globals';
import { Controller, Get, type ExecutionContext } from '@nestjs/common';
import { PATH_METADATA, METHOD_METADATA } from '@nestjs/common/constants.js';
import { Reflector } from '@nestjs/core';
import {
  AUTHENTICATED_ONLY,
  AccessGuard,
  AuthErrorCode,
  AuthException,
  IS_PUBLIC,
  REQUIRED_PERMISSION,
  isPermission,
} from '@lq/auth';
import { VMService } from '@lq/proto';
import { CONTROLLERS } from '../app.module.js';
import { METHOD_PERMISSIONS } from '../connect/connect-auth.js';

type Target = object | ((...args: never[]) => unknown);

function declared(key: string, handler: Target, cls: Target): unknown {
  return Reflect.getMetadata(key, handler) ?? Reflect.getMetadata(key, cls);
}

/** Every REST route of every controller: [description, handler, class]. */
function routes(): Array<[string, Target, Target]> {
  const out: Array<[string, Target, Target]> = [];
  for (const cls of CONTROLLERS) {
    const proto = cls.prototype as unknown as Record<string, Target>;
    for (const name of Object.getOwnPropertyNames(proto)) {
      const handler = proto[name];
      if (
        name !== 'constructor' &&
        typeof handler === 'function' &&
        Reflect.hasMetadata(PATH_METADATA, handler)
      ) {
        const method = Reflect.getMetadata(METHOD_METADATA, handler) as number;
        out.push([
          `${cls.name}.${name} (${method}) ${String(Reflect.getMetadata(PATH_METADATA, handler))}`,
          handler,
          cls,
        ]);
      }
    }
  }
  return out;
}

describe('route permissions (deny by default)', () => {
  it('should find the routes of every controller', () => {
    expect(routes().length).toBeGreaterThan(25);
  });

  it.each(routes())(
    'should declare @Public(), a permission or @Authenticated() on %s',
    (_, handler, cls) => {
      const permission = declared(REQUIRED_PERMISSION, handler, cls);
      const ok =
        declared(IS_PUBLIC, handler, cls) === true ||
        declared(AUTHENTICATED_ONLY, handler, cls) === true ||
        (typeof permission === 'string' && isPermission(permission));
      expect(ok).toBe(true);
    },
  );

  it('should list every VMService method with a permission for Connect and gRPC', () => {
    for (const method of VMService.methods) {
      const p = METHOD_PERMISSIONS[`${VMService.typeName}/${method.name}`];
      expect([
        method.name,
        p !== undefined && (p === 'public' || p === 'authenticated' || isPermission(p)),
      ]).toEqual([method.name, true]);
    }
  });

  it('should refuse a route that declares nothing, before any authentication', async () => {
    @Controller('x')
    class Undeclared {
      @Get()
      open() {
        return 'should never run';
      }
    }
    const hook = { authFailed: async () => undefined, denied: async () => undefined };
    const guard = new AccessGuard(new Reflector(), hook);
    const req = { method: 'GET', originalUrl: '/x', url: '/x', headers: {}, socket: {} };
    const context = {
      getHandler: () => Undeclared.prototype.open,
      getClass: () => Undeclared,
      switchToHttp: () => ({
        getRequest: () => req,
        getResponse: () => ({ setHeader: () => undefined }),
      }),
    } as unknown as ExecutionContext;
    const err = await guard.canActivate(context).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthException);
    expect((err as AuthException).code).toBe(AuthErrorCode.PERMISSION_DENIED);
    expect((err as AuthException).message).toContain('declares no permission');
  });
});
