import { describe, expect, it } from '@jest/globals';
import { ConfigError, parseNodeDaemonEnv } from './env.schema.js';

// Any Ed25519 public key (the raw 32 bytes, base64) will do.
const KEY = Buffer.alloc(32, 7).toString('base64');

describe('parseNodeDaemonEnv', () => {
  it('should apply defaults when only the node id is set', () => {
    const c = parseNodeDaemonEnv({ LQ_NODE_ID: 'node-1', LQ_CONTROL_PLANE_KEYS: KEY });
    expect(c.nodeId).toBe('node-1');
    expect(c.nats.servers).toEqual(['nats://127.0.0.1:4222']);
    expect(c.channelDirs).toEqual(['/var/lib/libvirt/qemu/channel/target']);
    expect(c.nats.maxReconnectAttempts).toBe(-1);
    expect(c.defaultTimeoutMs).toBe(30_000);
    expect(c.libvirtRunDir).toBe('/run/libvirt/qemu');
  });

  it('should parse lists and numbers when they are given', () => {
    const c = parseNodeDaemonEnv({
      LQ_NODE_ID: 'n',
      LQ_CONTROL_PLANE_KEYS: `${KEY}, ${Buffer.alloc(32, 8).toString('base64')}`,
      NATS_URL: 'nats://a:4222, nats://b:4222',
      LQ_CHANNEL_DIRS: '/x,/y',
      LQ_HEARTBEAT_INTERVAL_MS: '250',
    });
    expect(c.nats.servers).toEqual(['nats://a:4222', 'nats://b:4222']);
    expect(c.channelDirs).toEqual(['/x', '/y']);
    expect(c.heartbeatIntervalMs).toBe(250);
    expect(c.signatures.trustedKeys).toHaveLength(2);
  });

  it('should refuse to start without a trusted control-plane key, or with a malformed one', () => {
    expect(() => parseNodeDaemonEnv({ LQ_NODE_ID: 'n' })).toThrow(/LQ_CONTROL_PLANE_KEYS must/);
    expect(() => parseNodeDaemonEnv({ LQ_NODE_ID: 'n', LQ_CONTROL_PLANE_KEYS: 'abc' })).toThrow(
      /LQ_CONTROL_PLANE_KEYS: an Ed25519 public key is 32 bytes/,
    );
  });

  it.each([
    [{ LQ_NODE_ID: 'has.dot' }, /LQ_NODE_ID/],
    [{ LQ_NODE_ID: 'n', NATS_URL: 'http://x' }, /NATS_URL/],
    [{ LQ_NODE_ID: 'n', LQ_CHANNEL_DIRS: 'relative' }, /LQ_CHANNEL_DIRS/],
    [{ LQ_NODE_ID: 'n', LQ_LIBVIRT_RUN_DIR: 'run/libvirt' }, /LQ_LIBVIRT_RUN_DIR/],
    [{ LQ_NODE_ID: 'n', LQ_HEARTBEAT_INTERVAL_MS: 'soon' }, /LQ_HEARTBEAT_INTERVAL_MS/],
    [{ LQ_NODE_ID: 'n', NATS_USER: 'u' }, /NATS_PASSWORD/],
    [
      { LQ_NODE_ID: 'n', LQ_DEFAULT_TIMEOUT_MS: '9000', LQ_MAX_TIMEOUT_MS: '1000' },
      /LQ_DEFAULT_TIMEOUT_MS/,
    ],
    [{ LQ_NODE_ID: 'n', LQ_LOG_LEVEL: 'loud' }, /LQ_LOG_LEVEL/],
  ])('should name the variable when %o is invalid', (env, name) => {
    expect(() => parseNodeDaemonEnv(env)).toThrow(ConfigError);
    expect(() => parseNodeDaemonEnv(env)).toThrow(name);
  });
});

describe('configuration reference', () => {
  it('should document every variable the daemon reads in the README', async () => {
    const { readFileSync } = await import('node:fs');
    const { ENV_VARIABLES } = await import('./env.schema.js');
    const readme = readFileSync(new URL('../../../../README.md', import.meta.url), 'utf8');
    for (const [names] of ENV_VARIABLES) {
      for (const name of names.split(' / ')) {
        expect(readme).toContain(name);
      }
    }
  });
});
