// The shipped executable itself (scripts/build-executables.mjs): what it says it is, agentctl
// inside it, and that nothing in the directory it starts from changes it. bun's compiled
// executables read .env and bunfig.toml from the working directory unless built not to; the
// agent runs as root from wherever it was started, so the build turns both off.
import { spawn, spawnSync } from 'node:child_process';
import { lstatSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { create } from '@bufbuild/protobuf';
import { PingRequestSchema } from '@lq/proto';
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

/** Each thread of a process: its name and nice value (/proc/PID/task/TID/stat). */
function threadsOf(pid: number): Array<{ name: string; nice: number }> {
  const out: Array<{ name: string; nice: number }> = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.push({ name, nice: Number(fields[16]) });
    } catch {
      // the thread ended
    }
  }
  return out;
}

describe('the runtime helper threads (helper_thread_nice)', () => {
  const helpers = ['JITWorker', 'JSCWarmUp', 'mi-scavenger'];

  /** The agent's threads once its helpers exist and its first pings (JIT work) are answered. */
  async function threadsAfterWork(
    agent: RunningAgent,
    want: (nice: number) => boolean,
    waitMs: number,
  ) {
    const client = await agent.client();
    for (let i = 0; i < 2000; i++) {
      await client.call({ case: 'ping', value: create(PingRequestSchema) }, 'pong');
    }
    let threads = threadsOf(agent.proc.pid!);
    // The idle reclaim lowers helpers started after the agent was assembled: wait for it.
    for (const end = Date.now() + waitMs; Date.now() < end; await sleep(200)) {
      threads = threadsOf(agent.proc.pid!);
      if (threads.filter((t) => helpers.includes(t.name)).every((t) => want(t.nice))) {
        break;
      }
    }
    return threads;
  }

  it('should run them at nice 19 by default, not the main thread or the collector helpers', async () => {
    const agent = await startAgent();
    try {
      const threads = await threadsAfterWork(agent, (nice) => nice === 19, 15_000);
      const lowered = threads.filter((t) => helpers.includes(t.name));
      expect(lowered.map((t) => t.name)).toEqual(expect.arrayContaining(['JITWorker']));
      expect(lowered.every((t) => t.nice === 19)).toBe(true);
      // The rest keep the priority the agent was started at (its main thread's).
      const own = threads[0]!.nice;
      const others = threads.filter((t) => !helpers.includes(t.name));
      expect(others.every((t) => t.nice === own)).toBe(true);
    } finally {
      await agent.stop();
    }
  });

  it('should leave them at the agent priority with helper_thread_nice 0', async () => {
    const agent = await startAgent({ helper_thread_nice: 0 });
    try {
      // Past the idle reclaim (memory.idle_reclaim_ms, 500 ms), where helpers would be lowered.
      const threads = await threadsAfterWork(agent, () => false, 1500);
      expect(threads.some((t) => t.name === 'JITWorker')).toBe(true);
      expect(threads.every((t) => t.nice === threads[0]!.nice)).toBe(true);
    } finally {
      await agent.stop();
    }
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
