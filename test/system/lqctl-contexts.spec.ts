// Issue 21, item 4: lqctl's named contexts against a real control plane (its tsc build, a real
// PostgreSQL and nats-server) and the bundled lqctl. The same control plane answers as
// http://127.0.0.1:PORT and http://localhost:PORT, which lqctl takes for two servers: login
// stores a context per server, use-context and --context switch, credentials stored for one
// server are never sent to the other (a clear exit 4 naming the right context), and a config
// file of the old single-server format keeps working.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  TEST_ADMIN_TOKEN,
  startControlPlaneProcess,
  type RunningControlPlane,
} from '../support/control-plane-process.js';
import { runLqctl, type LqctlRun } from '../support/lqctl-process.js';
import { startNatsServer, type RunningNats } from '../support/nats-server.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';

describe('lqctl named contexts (config get-contexts|use-context|current-context, --context)', () => {
  let nats: RunningNats;
  let db: TestDatabase;
  let cp: RunningControlPlane;
  let work: string;
  let lab: string;
  let prod: string;

  function lqctl(args: string[], config = join(work, 'config.json')): Promise<LqctlRun> {
    return runLqctl(args, {
      env: {
        LQCTL_CONFIG: config,
        XDG_CONFIG_HOME: work,
        LQ_SERVER: undefined,
        LQ_TOKEN: undefined,
        LQ_CONTEXT: undefined,
      },
      stdin: `${TEST_ADMIN_TOKEN}\n`,
    });
  }

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'lq-lqctl-contexts-'));
    [nats, db] = await Promise.all([startNatsServer(), createTestDatabase('lq_contexts')]);
    cp = await startControlPlaneProcess({ databaseUrl: db.url, natsUrl: nats.url });
    lab = cp.url;
    prod = cp.url.replace('127.0.0.1', 'localhost');
  });

  afterAll(async () => {
    await cp?.stop();
    await nats?.stop();
    await db?.drop();
    rmSync(work, { recursive: true, force: true });
  });

  it('should store a context per login and switch between them', async () => {
    const first = await lqctl(['--server', lab, 'login', '--api-key', '-']);
    expect([first.code, first.stderr]).toEqual([0, expect.stringContaining('context default')]);
    const second = await lqctl(['--server', prod, '--context', 'prod', 'login', '--api-key', '-']);
    expect([second.code, second.stderr]).toEqual([0, expect.stringContaining('context prod')]);

    expect((await lqctl(['config', 'current-context'])).stdout).toBe('prod\n');
    const listed = await lqctl(['config', 'get-contexts', '-o', 'json']);
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.stdout)).toEqual([
      { name: 'default', current: false, server: lab, user: 'admin', auth: 'api-key' },
      { name: 'prod', current: true, server: prod, user: 'admin', auth: 'api-key' },
    ]);
    expect(listed.stdout).not.toContain(TEST_ADMIN_TOKEN);
    const table = await lqctl(['config', 'get-contexts']);
    expect(table.stdout.split('\n')[0]).toMatch(/^CURRENT\s+NAME\s+SERVER\s+USER$/);
    expect(table.stdout).toMatch(/\*\s+prod\s/);

    const whoProd = await lqctl(['whoami']);
    expect([whoProd.code, whoProd.stdout]).toEqual([0, expect.stringContaining(`at ${prod}`)]);
    expect(whoProd.stdout).toContain('context prod');

    const used = await lqctl(['config', 'use-context', 'default']);
    expect([used.code, used.stdout]).toEqual([0, `switched to context default (${lab})\n`]);
    const whoLab = await lqctl(['whoami']);
    expect([whoLab.code, whoLab.stdout]).toEqual([0, expect.stringContaining(`at ${lab}`)]);
    // --context for one command, the current context unchanged.
    const once = await lqctl(['--context', 'prod', 'whoami']);
    expect([once.code, once.stdout]).toEqual([0, expect.stringContaining(`at ${prod}`)]);
    expect((await lqctl(['config', 'current-context'])).stdout).toBe('default\n');
  });

  it('should refuse to use a context’s credentials on another server, naming the right one', async () => {
    const other = await lqctl(['--server', prod, 'vms', 'ls']);
    expect(other.code).toBe(4);
    expect(other.stderr).toContain(
      `the credentials of context default are for ${lab}, not ${prod} (--server)`,
    );
    expect(other.stderr).toContain('--context prod');
    expect(other.stdout).toBe('');
  });

  it('should name an unknown context with the ones there are', async () => {
    const unknown = await lqctl(['--context', 'prdo', 'vms', 'ls']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no context prdo');
    expect(unknown.stderr).toContain('did you mean prod');
    const use = await lqctl(['config', 'use-context', 'staging']);
    expect([use.code, use.stderr]).toEqual([2, expect.stringContaining('no context staging')]);
  });

  it('should keep reading a config file of the old single-server format', async () => {
    const old = join(work, 'old.json');
    writeFileSync(old, JSON.stringify({ server: lab, api_key: TEST_ADMIN_TOKEN }), {
      mode: 0o600,
    });
    const who = await lqctl(['whoami'], old);
    expect([who.code, who.stdout]).toEqual([0, expect.stringContaining('admin')]);
    expect((await lqctl(['config', 'current-context'], old)).stdout).toBe('default\n');
    // A new context is added beside the old one; the old credentials stay.
    expect((await lqctl(['config', 'set-context', 'prod', '--server', prod], old)).code).toBe(0);
    const saved = JSON.parse(readFileSync(old, 'utf8')) as {
      current_context: string;
      contexts: Record<string, { server: string; api_key?: string }>;
    };
    expect(saved.current_context).toBe('default');
    expect(saved.contexts.default).toEqual({ server: lab, api_key: TEST_ADMIN_TOKEN });
    expect(saved.contexts.prod).toEqual({ server: prod });
    // Signing the current context in to another server says what it replaced.
    const moved = await lqctl(['--server', prod, 'login', '--api-key', '-'], old);
    expect(moved.code).toBe(0);
    expect(moved.stderr).toContain(`context default was ${lab}`);
  });

  it('should complete the config verbs in bash, zsh and fish', async () => {
    for (const shell of ['bash', 'zsh', 'fish']) {
      const script = (await lqctl(['completion', shell])).stdout;
      for (const verb of ['get-contexts', 'use-context', 'current-context', 'set-context']) {
        expect([shell, verb, script.includes(verb)]).toEqual([shell, verb, true]);
      }
      expect(script).toContain(shell === 'fish' ? '-l context' : '--context');
    }
  });
});
