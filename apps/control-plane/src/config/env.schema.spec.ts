import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  CONTROL_PLANE_ENV,
  ConfigError,
  parseControlPlaneEnv,
  parseDatabaseEnv,
} from './env.schema.js';

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
    expect(c.audit.outputRedaction).toEqual({ defaults: true, patterns: [], holdBytes: 4096 });
  });

  it('should read the telemetry history’s resolutions and bounds', () => {
    expect(parseControlPlaneEnv(BASE).telemetry).toMatchObject({
      fine: { stepSeconds: 60, retentionSeconds: 86_400 },
      coarse: { stepSeconds: 900, retentionSeconds: 30 * 86_400 },
      queryMaxWindowSeconds: 30 * 86_400,
    });
    const c = parseControlPlaneEnv({
      ...BASE,
      LQ_TELEMETRY_FINE_STEP_SECONDS: '30',
      LQ_TELEMETRY_FINE_RETENTION_HOURS: '12',
      LQ_TELEMETRY_COARSE_STEP_SECONDS: '3600',
      LQ_TELEMETRY_COARSE_RETENTION_DAYS: '365',
      LQ_TELEMETRY_QUERY_MAX_DAYS: '90',
    });
    expect(c.telemetry).toMatchObject({
      fine: { stepSeconds: 30, retentionSeconds: 12 * 3600 },
      coarse: { stepSeconds: 3600, retentionSeconds: 365 * 86_400 },
      queryMaxWindowSeconds: 90 * 86_400,
    });
  });

  it('should read more output redaction patterns, with flags', () => {
    const c = parseControlPlaneEnv({
      ...BASE,
      LQ_OUTPUT_REDACT_DEFAULTS: 'false',
      LQ_OUTPUT_REDACT_PATTERNS: '["(?<=pin=)\\\\d+", "/ticket-[a-z]+/i"]',
    });
    expect(c.audit.outputRedaction.defaults).toBe(false);
    expect(c.audit.outputRedaction.patterns.map((p) => [p.source, p.flags])).toEqual([
      ['(?<=pin=)\\d+', 'g'],
      ['ticket-[a-z]+', 'gi'],
    ]);
  });

  it.each([
    [{}, /DATABASE_URL/],
    [{ ...BASE, NATS_URL: 'http://x' }, /NATS_URL/],
    [{ ...BASE, LQ_HTTP_PORT: 'eighty' }, /LQ_HTTP_PORT/],
    [{ ...BASE, LQ_HTTP_KEEP_ALIVE_TIMEOUT_MS: '500' }, /LQ_HTTP_KEEP_ALIVE_TIMEOUT_MS/],
    [{ ...BASE, LQ_AGENT_UPDATE_CHUNK_TIMEOUT_MS: 'soon' }, /LQ_AGENT_UPDATE_CHUNK_TIMEOUT_MS/],
    [{ ...BASE, LQ_AGENT_UPDATE_COMMIT_TIMEOUT_MS: '0' }, /LQ_AGENT_UPDATE_COMMIT_TIMEOUT_MS/],
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
    [{ ...BASE, LQ_OUTPUT_REDACT_DEFAULTS: 'perhaps' }, /LQ_OUTPUT_REDACT_DEFAULTS/],
    [{ ...BASE, LQ_OUTPUT_REDACT_PATTERNS: 'pin=\\d+' }, /LQ_OUTPUT_REDACT_PATTERNS .*JSON/],
    [{ ...BASE, LQ_OUTPUT_REDACT_PATTERNS: '["ok", "(unclosed"]' }, /PATTERNS \[1\]/],
    [{ ...BASE, LQ_OUTPUT_REDACT_PATTERNS: '["/x/g"]' }, /PATTERNS \[0\] flags "g"/],
    [{ ...BASE, LQ_OUTPUT_REDACT_PATTERNS: '["a*"]' }, /PATTERNS \[0\] matches the empty/],
    [{ ...BASE, LQ_TELEMETRY_COARSE_STEP_SECONDS: '90' }, /LQ_TELEMETRY_COARSE_STEP_SECONDS/],
    [{ ...BASE, LQ_TELEMETRY_FINE_STEP_SECONDS: '5' }, /LQ_TELEMETRY_FINE_STEP_SECONDS/],
    [
      {
        ...BASE,
        LQ_TELEMETRY_FINE_RETENTION_HOURS: '720',
        LQ_TELEMETRY_COARSE_RETENTION_DAYS: '7',
      },
      /LQ_TELEMETRY_COARSE_RETENTION_DAYS/,
    ],
    [{ ...BASE, LQ_TELEMETRY_FINE_RETENTION_HOURS: '400' }, /more than 20000 points/],
    [{ ...BASE, LQ_TELEMETRY_BUFFER_MAX: '10' }, /LQ_TELEMETRY_BUFFER_MAX/],
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

describe('parseDatabaseEnv (DATABASE_SSL_*)', () => {
  let dir: string;
  const file = (name: string) => join(dir, name);
  const URL_ = 'postgres://lq@db.example:5432/lq';

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'lq-db-tls-'));
    const script = fileURLToPath(new URL('../../../../deploy/tls/make-certs.sh', import.meta.url));
    execFileSync('sh', [script, '--out', dir, '--owners', ''], { stdio: 'ignore' });
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('should leave TLS to DATABASE_URL when DATABASE_SSL_MODE is unset', () => {
    expect(parseDatabaseEnv({ DATABASE_URL: `${URL_}?sslmode=verify-full` })).toEqual({
      url: `${URL_}?sslmode=verify-full`,
      tls: undefined,
    });
  });

  it('should check the certificate and the host name with verify-full', () => {
    const { tls } = parseDatabaseEnv({
      DATABASE_URL: URL_,
      DATABASE_SSL_MODE: 'verify-full',
      DATABASE_SSL_CA: file('ca/ca.crt'),
    });
    expect(tls).toEqual({
      ca: readFileSync(file('ca/ca.crt'), 'utf8'),
      rejectUnauthorized: true,
    });
  });

  it('should check the certificate but not the host name with verify-ca', () => {
    const { tls } = parseDatabaseEnv({
      DATABASE_URL: URL_,
      DATABASE_SSL_MODE: 'verify-ca',
      DATABASE_SSL_CA: file('ca/ca.crt'),
    });
    expect(tls && tls.rejectUnauthorized).toBe(true);
    expect(tls && tls.checkServerIdentity?.('other.example', {} as never)).toBeUndefined();
  });

  it('should encrypt without checking with require, and not at all with disable', () => {
    expect(parseDatabaseEnv({ DATABASE_URL: URL_, DATABASE_SSL_MODE: 'require' }).tls).toEqual({
      rejectUnauthorized: false,
    });
    expect(parseDatabaseEnv({ DATABASE_URL: URL_, DATABASE_SSL_MODE: 'disable' }).tls).toBe(false);
  });

  it('should present a client certificate when given one', () => {
    const { tls } = parseDatabaseEnv({
      DATABASE_URL: URL_,
      DATABASE_SSL_MODE: 'verify-full',
      DATABASE_SSL_CERT: file('proxy/tls.crt'),
      DATABASE_SSL_KEY: file('proxy/tls.key'),
    });
    expect(tls && [tls.cert, tls.key]).toEqual([
      readFileSync(file('proxy/tls.crt'), 'utf8'),
      readFileSync(file('proxy/tls.key'), 'utf8'),
    ]);
  });

  it.each([
    [{ DATABASE_SSL_MODE: 'on' }, /^DATABASE_SSL_MODE must be one of disable, require/],
    [{ DATABASE_SSL_CA: 'ca/ca.crt' }, /^DATABASE_SSL_MODE must be set/],
    [
      { DATABASE_SSL_MODE: 'verify-full', DATABASE_SSL_CA: 'ca/nope.crt' },
      /^DATABASE_SSL_CA: cannot read/,
    ],
    [
      { DATABASE_SSL_MODE: 'verify-full', DATABASE_SSL_CA: 'ca/ca.key' },
      /^DATABASE_SSL_CA: .* holds no PEM certificate/,
    ],
    [
      { DATABASE_SSL_MODE: 'verify-full', DATABASE_SSL_KEY: 'proxy/tls.key' },
      /^DATABASE_SSL_CERT and DATABASE_SSL_KEY must be set together/,
    ],
    [
      { DATABASE_SSL_MODE: 'verify-full', DATABASE_URL: `${URL_}?sslmode=require` },
      /^DATABASE_URL sets sslmode and DATABASE_SSL_MODE is set/,
    ],
  ])('should refuse %o naming the variable', (vars, message) => {
    const env: NodeJS.ProcessEnv = { DATABASE_URL: URL_ };
    for (const [k, v] of Object.entries(vars)) {
      env[k] = /_(CA|CERT|KEY)$/.test(k) ? file(v) : v;
    }
    expect(() => parseDatabaseEnv(env)).toThrow(ConfigError);
    expect(() => parseDatabaseEnv(env)).toThrow(message);
    expect(() => parseControlPlaneEnv(env)).toThrow(message);
  });
});
