import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ConfigError, envNats } from './env.js';

// Real certificates from deploy/tls/make-certs.sh (openssl), as operators make them.
const MAKE_CERTS = fileURLToPath(new URL('../../../deploy/tls/make-certs.sh', import.meta.url));

describe('envNats TLS (NATS_TLS_CA, NATS_TLS_CERT, NATS_TLS_KEY)', () => {
  let dir: string;
  const file = (name: string) => join(dir, name);

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'lq-env-tls-'));
    execFileSync('sh', [MAKE_CERTS, '--out', dir, '--owners', ''], { stdio: 'ignore' });
    writeFileSync(file('garbage.pem'), 'not a certificate\n');
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('should leave TLS off when nothing asks for it', () => {
    expect(envNats({ NATS_URL: 'nats://a:4222' }).tls).toBeUndefined();
    expect(envNats({ NATS_TLS_CA: '' }).tls).toBeUndefined();
  });

  it('should require TLS with the CA file when NATS_TLS_CA is set', () => {
    expect(envNats({ NATS_TLS_CA: file('ca/ca.crt') }).tls).toEqual({
      caFile: file('ca/ca.crt'),
    });
  });

  it('should require TLS with the system CAs for a tls:// URL', () => {
    expect(envNats({ NATS_URL: 'nats://a:4222,tls://b:4222' }).tls).toEqual({});
  });

  it('should take a client certificate with its key', () => {
    expect(
      envNats({
        NATS_TLS_CA: file('nats/ca.crt'),
        NATS_TLS_CERT: file('proxy/tls.crt'),
        NATS_TLS_KEY: file('proxy/tls.key'),
      }).tls,
    ).toEqual({
      caFile: file('nats/ca.crt'),
      certFile: file('proxy/tls.crt'),
      keyFile: file('proxy/tls.key'),
    });
  });

  it.each([
    [
      { NATS_TLS_CA: '/nonexistent/ca.crt' },
      /^NATS_TLS_CA: cannot read \/nonexistent\/ca.crt \(ENOENT\)$/,
    ],
    [{ NATS_TLS_CA: 'garbage.pem' }, /^NATS_TLS_CA: .*garbage.pem holds no PEM certificate$/],
    [{ NATS_TLS_CA: 'proxy/tls.key' }, /^NATS_TLS_CA: .* holds no PEM certificate$/],
    [{ NATS_TLS_CERT: 'proxy/tls.crt' }, /^NATS_TLS_CERT and NATS_TLS_KEY must be set together$/],
    [{ NATS_TLS_KEY: 'proxy/tls.key' }, /^NATS_TLS_CERT and NATS_TLS_KEY must be set together$/],
    [
      { NATS_TLS_CERT: 'proxy/tls.crt', NATS_TLS_KEY: 'nats/tls.key' },
      /^NATS_TLS_KEY: .*nats\/tls.key is not the key of the certificate in NATS_TLS_CERT$/,
    ],
    [
      { NATS_TLS_CERT: 'proxy/tls.crt', NATS_TLS_KEY: 'proxy/tls.crt' },
      /^NATS_TLS_KEY: .* holds no PEM private key$/,
    ],
  ])('should refuse %o naming the variable', (vars, message) => {
    const env = Object.fromEntries(
      Object.entries(vars).map(([k, v]) => [k, v.startsWith('/') ? v : file(v)]),
    );
    expect(() => envNats(env)).toThrow(ConfigError);
    expect(() => envNats(env)).toThrow(message);
  });
});
