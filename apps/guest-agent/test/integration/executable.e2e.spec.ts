// The shipped executable itself (scripts/build-executables.mjs): what it says it is, agentctl
// inside it, and that nothing in the directory it starts from changes it. bun's compiled
// executables read .env and bunfig.toml from the working directory unless built not to; the
// agent runs as root from wherever it was started, so the build turns both off.
import { spawn, spawnSync } from 'node:child_process';
import { lstatSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { agentExecutable, startAgent, type RunningAgent } from '../support/agent-process.js';

describe('the agent executable', () => {
  let agent: RunningAgent;
  let dir: string;

  beforeAll(async () => {
    agent = await startAgent();
    dir = mkdtempSync(join(tmpdir(), 'lq-exe-cwd-'));
  });

  afterAll(async () => {
    await agent?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const run = (args: string[], cwd = dir, env: NodeJS.ProcessEnv = { PATH: '/usr/bin:/bin' }) =>
    spawnSync(agentExecutable(), args, { cwd, env, encoding: 'utf8', timeout: 30_000 });

  it('should print its version, commit and target when asked for --version', () => {
    const r = run(['--version']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(
      /^\d+\.\d+\.\d+ \(protocol \d+\) commit ([0-9a-f]{12}(-dirty)?|unknown) target linux-amd64\n$/,
    );
  });

  it('should be agentctl when its first argument is ctl', () => {
    const r = run(['ctl', '--socket', agent.socketPath, 'ping']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^pong from agent \d+\.\d+\.\d+/);
  });

  it('should ignore a .env and a bunfig.toml in the directory it starts from', () => {
    // With .env read, agentctl would take its socket from LQ_AGENT_SOCKET there and answer.
    writeFileSync(join(dir, '.env'), `LQ_AGENT_SOCKET=${agent.socketPath}\n`);
    writeFileSync(join(dir, 'bunfig.toml'), 'preload = ["./evil.js"]\n');
    writeFileSync(join(dir, 'evil.js'), 'console.log("preloaded");\n');
    const r = run(['ctl', 'ping']);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/--socket/);
    expect(r.status).toBe(2);
    const v = run(['--version']);
    expect(v.stdout).not.toContain('preloaded');
  });
});

describe('the agent socket (--listen)', () => {
  it('should appear only when listening and with mode 0600, so the first connect is served', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lq-exe-sock-'));
    const socket = join(dir, 'agent.sock');
    writeFileSync(join(dir, 'agent.json'), '{"log_level":"warn"}');
    const proc = spawn(
      agentExecutable(),
      ['--listen', socket, '--config', join(dir, 'agent.json')],
      {
        stdio: 'ignore',
      },
    );
    try {
      // Poll as fast as this process can: the first sight of the path is what a host sees.
      let mode = -1;
      const deadline = Date.now() + 20_000;
      while (mode < 0 && Date.now() < deadline) {
        try {
          mode = lstatSync(socket).mode;
        } catch {
          // not there yet
        }
      }
      expect((mode & 0o777).toString(8)).toBe('600');
      const connected = await new Promise<string>((resolve) => {
        const s = createConnection(socket);
        s.once('connect', () => {
          s.destroy();
          resolve('connected');
        });
        s.once('error', (err) => resolve(String(err)));
      });
      expect(connected).toBe('connected');
      expect(readdirSync(dir).sort()).toEqual(['agent.json', 'agent.sock']);
    } finally {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
