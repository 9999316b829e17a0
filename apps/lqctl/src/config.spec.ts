import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import {
  DEFAULT_SERVER,
  configPath,
  contextNameOf,
  deleteContext,
  loadConfig,
  readConfigFile,
  resolveSettings,
  saveConfig,
  setContextServer,
  useContext,
} from './config.js';
import { contextRows } from './commands/config.command.js';
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

  it('should not send the file’s credentials to another server, and say whose they are', () => {
    const s = resolveSettings({ server: 'http://elsewhere:8080' }, {}, config, 'prod');
    expect(s).toMatchObject({
      server: 'http://elsewhere:8080',
      token: undefined,
      tokenSource: 'none',
    });
    expect(s.credentialsProblem).toBe(
      'the credentials of context prod are for http://cp:8080, not http://elsewhere:8080 (--server): sign in there with lqctl login --server http://elsewhere:8080 --context NAME, or drop --server',
    );
    expect(
      resolveSettings({}, { LQ_SERVER: 'http://elsewhere:8080' }, config).credentialsProblem,
    ).toContain('(LQ_SERVER)');
    // A server without stored credentials is no problem: nothing would have been sent.
    expect(
      resolveSettings({ server: 'http://x' }, {}, { server: 'http://cp:8080' }).credentialsProblem,
    ).toBeUndefined();
    // A token given for this call needs no stored credentials.
    expect(
      resolveSettings({ server: 'http://x', token: 'lq_t' }, {}, config).credentialsProblem,
    ).toBeUndefined();
  });

  it('should point at the context whose server was asked for', () => {
    const others = {
      prod: config,
      dev: { server: 'http://dev:8080', api_key: 'lq_dev' },
    };
    expect(
      resolveSettings({ server: 'http://dev:8080/' }, {}, config, 'prod', others)
        .credentialsProblem,
    ).toContain('use that server’s context with --context dev'.replace('’', "'"));
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

describe('named contexts', () => {
  it('should read the old single-server file as the context default, and keep reading it', () => {
    const file = join(dir, 'old.json');
    writeFileSync(file, JSON.stringify({ server: 'http://cp:8080', api_key: 'lq_k' }), {
      mode: 0o600,
    });
    expect(readConfigFile(file)).toEqual({
      current_context: 'default',
      contexts: { default: { server: 'http://cp:8080', api_key: 'lq_k' } },
    });
    expect(loadConfig(file)).toEqual({ server: 'http://cp:8080', api_key: 'lq_k' });
  });

  it('should add a context beside the old one and keep both when it rewrites the file', () => {
    const file = join(dir, 'upgrade.json');
    writeFileSync(file, JSON.stringify({ server: 'http://cp:8080', api_key: 'lq_k' }), {
      mode: 0o600,
    });
    saveConfig(file, { server: 'https://prod', api_key: 'lq_p' }, 'prod');
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({
      current_context: 'default',
      contexts: {
        default: { server: 'http://cp:8080', api_key: 'lq_k' },
        prod: { server: 'https://prod', api_key: 'lq_p' },
      },
    });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(loadConfig(file, undefined, 'prod')).toEqual({
      server: 'https://prod',
      api_key: 'lq_p',
    });
    useContext(file, 'prod');
    expect(loadConfig(file).server).toBe('https://prod');
    expect(contextRows(readConfigFile(file).contexts, 'prod')).toEqual([
      { name: 'default', current: false, server: 'http://cp:8080', user: '', auth: 'api-key' },
      { name: 'prod', current: true, server: 'https://prod', user: '', auth: 'api-key' },
    ]);
    // The listing never carries a secret.
    expect(JSON.stringify(contextRows(readConfigFile(file).contexts, 'prod'))).not.toContain('lq_');
  });

  it('should refuse an unknown context by name, listing the known ones', () => {
    const file = join(dir, 'use.json');
    saveConfig(file, { server: 'http://a' }, 'staging');
    expect(() => useContext(file, 'stagin')).toThrow(
      /no context stagin in .* \(contexts: staging\)/,
    );
    expect(() => deleteContext(file, 'nope')).toThrow(UsageError);
  });

  it('should drop a context’s credentials when set-context moves it to another server', () => {
    const file = join(dir, 'move.json');
    saveConfig(file, { server: 'http://a', api_key: 'lq_a' }, 'x');
    setContextServer(file, 'x', 'http://a');
    expect(loadConfig(file, undefined, 'x').api_key).toBe('lq_a');
    setContextServer(file, 'x', 'http://b');
    expect(loadConfig(file, undefined, 'x')).toEqual({ server: 'http://b' });
    deleteContext(file, 'x');
    expect(readConfigFile(file)).toEqual({ contexts: {} });
  });

  it('should pick --context, then LQ_CONTEXT, then the current context, and check the name', () => {
    const file = { current_context: 'dev', contexts: { dev: {}, prod: {} } };
    expect(contextNameOf('prod', { LQ_CONTEXT: 'x' }, file)).toEqual({ name: 'prod', named: true });
    expect(contextNameOf(undefined, { LQ_CONTEXT: 'x' }, file)).toEqual({ name: 'x', named: true });
    expect(contextNameOf(undefined, {}, file)).toEqual({ name: 'dev', named: false });
    expect(contextNameOf(undefined, {}, { contexts: {} })).toEqual({
      name: 'default',
      named: false,
    });
    expect(() => contextNameOf('a b', {}, file)).toThrow(/--context must be/);
    expect(() => contextNameOf(undefined, { LQ_CONTEXT: '-x' }, file)).toThrow(/LQ_CONTEXT/);
  });

  it('should refuse a contexts entry that is not an object', () => {
    const file = join(dir, 'badctx.json');
    writeFileSync(file, JSON.stringify({ contexts: [] }));
    expect(() => readConfigFile(file)).toThrow(/contexts must be an object/);
  });
});
