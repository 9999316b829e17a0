import { readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import { CONTROL_PLANE_ENV, ConfigError, parseControlPlaneEnv } from './env.schema.js';

const BASE = { DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/lq' };

describe('parseControlPlaneEnv', () => {
  it('should apply defaults when only DATABASE_URL is set', () => {
    const c = parseControlPlaneEnv(BASE);
    expect(c.http.port).toBe(8080);
    expect(c.grpc.port).toBe(9090);
    expect(c.nats.queueGroup).toBe('lq-control-plane');
    expect(c.runMigrations).toBe(true);
    expect(c.guestTimeoutSeconds).toBe(30);
    expect([c.vmAdoptAfterMs, c.claimReportIntervalMs]).toEqual([0, 600_000]);
  });

  it.each([
    [{}, /DATABASE_URL/],
    [{ ...BASE, NATS_URL: 'http://x' }, /NATS_URL/],
    [{ ...BASE, LQ_HTTP_PORT: 'eighty' }, /LQ_HTTP_PORT/],
    [{ ...BASE, LQ_RUN_MIGRATIONS: 'maybe' }, /LQ_RUN_MIGRATIONS/],
    [{ ...BASE, LQ_VM_ADOPT_AFTER_MS: '5000' }, /LQ_VM_ADOPT_AFTER_MS/],
    [{ ...BASE, LQ_CLAIM_REPORT_INTERVAL_MS: '10' }, /LQ_CLAIM_REPORT_INTERVAL_MS/],
    [
      { ...BASE, LQ_GUEST_TIMEOUT_SECONDS: '100', LQ_GUEST_TIMEOUT_MAX_SECONDS: '10' },
      /LQ_GUEST_TIMEOUT_SECONDS/,
    ],
    [{ ...BASE, NATS_PASSWORD: 'p' }, /NATS_USER/],
    [{ ...BASE, LQ_TRUST_PROXY: 'everyone' }, /LQ_TRUST_PROXY/],
    [{ ...BASE, LQ_ADMIN_TOKEN: 'admin' }, /LQ_ADMIN_TOKEN/],
    [{ ...BASE, LQ_JWT_SECRET: 'short' }, /LQ_JWT_SECRET/],
  ])('should name the variable when %o is invalid', (env, name) => {
    expect(() => parseControlPlaneEnv(env)).toThrow(ConfigError);
    expect(() => parseControlPlaneEnv(env)).toThrow(name);
  });

  it('should document every variable in the README', () => {
    const readme = readFileSync(new URL('../../../../README.md', import.meta.url), 'utf8');
    for (const [names] of CONTROL_PLANE_ENV) {
      for (const name of names.split(' / ')) {
        expect(readme).toContain(name);
      }
    }
  });
});
