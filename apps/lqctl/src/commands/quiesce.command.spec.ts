import type { Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ApiError, NotOfferedError } from '../errors.js';
import { quiesceCommand } from './quiesce.command.js';
import { command, testContext, testServer } from './test-context.js';

describe('quiesce and thaw', () => {
  let server: Server;
  let url: string;
  const bodies: unknown[] = [];

  beforeAll(async () => {
    // An older control plane: no quiesce route (Nest's 404), but it knows vm-1.
    ({ server, url } = await testServer((req, res, body) => {
      bodies.push(body && JSON.parse(body));
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify(
          req.url!.startsWith('/api/vms/vm-1/')
            ? { statusCode: 404, code: 'NOT_FOUND', message: `Cannot POST ${req.url}` }
            : { statusCode: 404, code: 'VM_NOT_FOUND', message: 'VM vm-9 is not in the inventory' },
        ),
      );
    }));
  });

  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('should say the control plane does not offer quiesce when the route is missing', async () => {
    for (const op of ['quiesce', 'thaw'] as const) {
      const { ctx } = testContext(url);
      const err = await quiesceCommand(op)(ctx, command([op, 'vm-1'])).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NotOfferedError);
      expect((err as Error).message).toMatch(
        new RegExp(`^this control plane does not offer ${op} yet`),
      );
    }
  });

  it('should report an unknown VM as such, not as a missing feature', async () => {
    const { ctx } = testContext(url);
    const err = await quiesceCommand('quiesce')(ctx, command(['quiesce', 'vm-9'])).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ code: 'VM_NOT_FOUND' });
  });

  it('should send the mounts and the auto-thaw timeout', async () => {
    bodies.length = 0;
    const { ctx } = testContext(url);
    await quiesceCommand('quiesce')(
      ctx,
      command(['quiesce', 'vm-1', '-m', '/', '--mount', '/data', '--timeout', '2m']),
    ).catch(() => undefined);
    expect(bodies).toEqual([{ mount_points: ['/', '/data'], timeout_seconds: 120 }]);
  });
});
