import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { DEFAULT_SERVER, configPath, loadConfig, resolveSettings, saveConfig } from './config.js';
import { UsageError } from './errors.js';

const dir = mkdtempSync(join(tmpdir(), 'lqctl-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('configPath', () => {
  it('should prefer LQCTL_CONFIG, then XDG_CONFIG_HOME, then ~/.config', () => {
    expect(configPath({ LQCTL_CONFIG: '/x/c.json', XDG_CONFIG_HOME: '/y' }, '/home/u')).toBe(
      '/x/c.json',
    );
    expect(configPath({ XDG_CONFIG_HOME: '/y' }, '/home/u')).toBe('/y/lqctl/config.json');
    expect(configPath({}, '/home/u')).toBe('/home/u/.config/lqctl/config.json');
  });
});

describe('saveConfig and loadConfig', () => {
  it('should write the file with mode 0600 in a directory it creates, and read it back', () => {
    const file = join(dir, 'a', 'b', 'config.json');
    const old = process.umask(0o022);
    try {
      saveConfig(file, { server: 'http://cp:8080', api_key: 'lq_k' });
    } finally {
      process.umask(old);
    }
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(loadConfig(file)).toEqual({ server: 'http://cp:8080', api_key: 'lq_k' });
  });

  it('should read a missing file as empty and refuse one that is not a JSON object', () => {
    expect(loadConfig(join(dir, 'nope.json'))).toEqual({});
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '[1,2]');
    expect(() => loadConfig(bad)).toThrow(UsageError);
    writeFileSync(bad, '{oops');
    expect(() => loadConfig(bad)).toThrow(/not valid JSON/);
  });

  it('should warn when a file holding credentials is readable by others', () => {
    const file = join(dir, 'open.json');
    writeFileSync(file, JSON.stringify({ api_key: 'lq_k', extra: 1 }), { mode: 0o644 });
    const warnings: string[] = [];
    expect(loadConfig(file, (l) => warnings.push(l))).toEqual({ api_key: 'lq_k' });
    expect(warnings[0]).toContain(`chmod 600 ${file}`);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ api_key: 'lq_k', extra: 1 });
  });
});

describe('resolveSettings', () => {
  const config = { server: 'http://cp:8080/', api_key: 'lq_file' };

  it('should take flags over the environment over the file, and default to npm start’s URL', () => {
    expect(resolveSettings({}, {}, {})).toEqual({
      server: DEFAULT_SERVER,
      token: undefined,
      tokenSource: 'none',
    });
    expect(DEFAULT_SERVER).toBe('http://localhost:8080');
    expect(resolveSettings({}, {}, config)).toEqual({
      server: 'http://cp:8080',
      token: 'lq_file',
      tokenSource: 'api-key',
    });
    expect(resolveSettings({}, { LQ_TOKEN: 'lq_env' }, config).token).toBe('lq_env');
    expect(resolveSettings({ token: 'lq_flag' }, { LQ_TOKEN: 'lq_env' }, config)).toMatchObject({
      token: 'lq_flag',
      tokenSource: 'flag',
    });
    expect(
      resolveSettings({ server: 'https://a/' }, { LQ_SERVER: 'http://b' }, config).server,
    ).toBe('https://a');
  });

  it('should not send the file’s credentials to another server', () => {
    expect(resolveSettings({ server: 'http://elsewhere:8080' }, {}, config)).toEqual({
      server: 'http://elsewhere:8080',
      token: undefined,
      tokenSource: 'none',
    });
  });

  it('should use a stored session when there is no API key', () => {
    expect(resolveSettings({}, {}, { access_token: 'jwt', refresh_token: 'r' })).toMatchObject({
      token: 'jwt',
      tokenSource: 'session',
    });
  });

  it('should refuse a server that is not an http(s) URL', () => {
    expect(() => resolveSettings({ server: 'localhost:8080' }, {}, {})).toThrow(UsageError);
    expect(() => resolveSettings({}, { LQ_SERVER: 'ftp://x' }, {})).toThrow(/LQ_SERVER/);
  });
});
