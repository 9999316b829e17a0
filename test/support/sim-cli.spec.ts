// scripts/sim.mjs (`npm run sim`) as a user runs it: a process printing lines, stopped by a signal.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { create } from '@bufbuild/protobuf';
import { PingRequestSchema } from '@lq/proto';
import { AgentClient } from '@lq/host';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SIM = join(REPO_ROOT, 'scripts/sim.mjs');

class SimCli {
  readonly proc: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(args: string[]) {
    this.proc = spawn(process.execPath, [SIM, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout?.on('data', (d: Buffer) => (this.stdout += d.toString()));
    this.proc.stderr?.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) =>
      this.proc.once('exit', (code, signal) => resolve({ code, signal })),
    );
  }

  async waitFor(pattern: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = pattern.exec(this.stdout);
      if (match) {
        return match;
      }
      if (this.proc.exitCode !== null || Date.now() > deadline) {
        throw new Error(`no ${pattern} in sim output:\n${this.stdout}\n${this.stderr}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** "<id> <socket> pid=<pid>" lines, latest last. */
  vmLines(): Array<{ id: string; socket: string; pid: number }> {
    return [...this.stdout.matchAll(/^(\S+) (\S+\.sock) pid=(\d+)$/gm)].map((m) => ({
      id: m[1]!,
      socket: m[2]!,
      pid: Number(m[3]),
    }));
  }

  async kill(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill('SIGTERM');
      await this.exited;
    }
  }
}

function runSim(args: string[], script = SIM): { status: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [script, ...args], { encoding: 'utf8', timeout: 10_000 });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

async function ping(path: string): Promise<void> {
  const client = new AgentClient({ path, hostId: 'sim-cli-test' });
  client.start();
  try {
    await client.waitReady(5000);
    await client.call({ case: 'ping', value: create(PingRequestSchema) }, 'pong');
  } finally {
    client.close();
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('scripts/sim.mjs', () => {
  let dir: string;
  const running: SimCli[] = [];

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'lq-sim-cli-'));
  });

  afterEach(async () => {
    await Promise.all(running.splice(0).map((s) => s.kill()));
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('should print each VM and ready, then stop every agent and its socket when sent SIGTERM', async () => {
    const channels = join(dir, 'channels');
    const sim = new SimCli([
      '--vms',
      '2',
      '--dir',
      channels,
      '--prefix',
      'node1-vm',
      '--config-extra',
      '{"telemetry_interval_ms":0,"policy":{"blocked_operations":["execute"]}}',
    ]);
    running.push(sim);
    await sim.waitFor(/^ready\b/m);
    const vms = sim.vmLines().sort((a, b) => a.id.localeCompare(b.id));
    expect(vms.map((v) => [v.id, v.socket])).toEqual([
      ['node1-vm1', join(channels, 'node1-vm1.sock')],
      ['node1-vm2', join(channels, 'node1-vm2.sock')],
    ]);
    await Promise.all(vms.map((v) => ping(v.socket)));
    const config = JSON.parse(
      readFileSync(join(channels, '.sim', 'node1-vm1', 'agent.json'), 'utf8'),
    );
    expect(config.telemetry_interval_ms).toBe(0);
    expect(config.policy.blocked_operations).toEqual(['execute']);
    expect(config.log_level).toBe('warn');

    sim.proc.kill('SIGTERM');
    expect(await sim.exited).toEqual({ code: 0, signal: null });
    for (const v of vms) {
      expect(alive(v.pid)).toBe(false);
      expect(existsSync(v.socket)).toBe(false);
    }
  });

  it('should log an unexpected exit and start the agent again when run with --restart', async () => {
    const channels = join(dir, 'restart');
    const sim = new SimCli(['--vms', '1', '--dir', channels, '--restart']);
    running.push(sim);
    await sim.waitFor(/^ready\b/m);
    const first = sim.vmLines()[0]!;
    process.kill(first.pid, 'SIGKILL');
    await sim.waitFor(/^ready[^]*^vm-1 \S+ pid=\d+$/m);
    const second = sim.vmLines().at(-1)!;
    expect(second.id).toBe('vm-1');
    expect(second.pid).not.toBe(first.pid);
    expect(sim.stderr).toMatch(/vm-1 \(pid \d+\) exited unexpectedly \(signal SIGKILL\)/);
    await ping(second.socket);
  });

  it('should exit 2 with a clear message when an argument is wrong', () => {
    const cases: Array<[string[], RegExp]> = [
      [['--dir', dir], /--vms is required/],
      [['--vms', '0', '--dir', dir], /--vms must be an integer from 1 to 2000/],
      [['--vms', '2001', '--dir', dir], /--vms must be an integer/],
      [['--vms', 'three', '--dir', dir], /--vms must be an integer/],
      [['--vms', '3'], /--dir is required/],
      [['--vms', '1', '--dir', dir, '--bogus'], /Unknown option '--bogus'/],
      [['--vms', '1', '--dir', dir, '--config-extra', '{'], /--config-extra is not valid JSON/],
      [['--vms', '1', '--dir', dir, '--config-extra', '[]'], /must be a JSON object/],
      [['--vms', '1', '--dir', dir, '--prefix', '../x'], /prefix may hold only/],
      [['--vms', '2', '--dir', dir, '--per-process', 'two'], /--per-process must be a whole/],
      [['--vms', '2', '--dir', dir, '--per-process', '0'], /agentsPerProcess must be an integer/],
      [['--vms', '2', '--dir', dir, '--per-process', '2', '--restart'], /restartOnExit needs/],
    ];
    for (const [args, message] of cases) {
      const r = runSim(args);
      expect({ args, status: r.status }).toEqual({ args, status: 2 });
      expect(r.err).toMatch(message);
    }
  });

  it('should document every option when run with --help', () => {
    const r = runSim(['--help']);
    expect(r.status).toBe(0);
    for (const option of [
      '--vms',
      '--dir',
      '--prefix',
      '--config-extra',
      '--restart',
      '--per-process',
    ]) {
      expect(r.out).toContain(option);
    }
    expect(r.out).toContain('shutdown.log');
  });

  it('should tell to run npm run build and exit 2 when the agent bundle is missing', () => {
    const copy = join(dir, 'checkout', 'scripts');
    mkdirSync(copy, { recursive: true });
    for (const file of ['sim.mjs', 'sim-core.mjs']) {
      copyFileSync(join(REPO_ROOT, 'scripts', file), join(copy, file));
    }
    const r = runSim(['--vms', '1', '--dir', join(dir, 'unused')], join(copy, 'sim.mjs'));
    expect(r.status).toBe(2);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.err).toMatch(/missing: run `npm run build` first/);
    expect(existsSync(join(dir, 'unused'))).toBe(false);
  });
});
