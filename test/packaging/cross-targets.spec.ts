// Each target of the release, as far as this amd64 Debian machine can run it (issue 17, item 4):
// - linux-arm64 under qemu-user (Debian's qemu-aarch64-static, with Debian's arm64 glibc)
//   answers ping, exec as nobody, and a file write and read, through its own agentctl;
// - the amd64 .deb installs with dpkg -i into a Debian 12 root made by debootstrap, which has no
//   Node.js, and the installed agent checks its config and serves its installed agentctl there;
// - linux-amd64-musl runs in a root with no glibc (busybox-static, Debian's musl) and answers
//   ping and exec.
// Roots come from test/support/foreign-roots.ts (cached in .cache). A test whose Debian package
// is missing skips saying so, unless LQ_CROSS_REQUIRED=1 (.ci/run) makes that a failure.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { arm64Libc, debianRoot, muslRoot, type Missing } from '../support/foreign-roots.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const executable = (target: string) => join(REPO_ROOT, 'dist/agent', `limiquantix-agent-${target}`);
const PKG = 'limiquantix-guest-agent';
const VERSION = String(
  (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string })
    .version,
).replaceAll('-', '~');
const SBIN_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
// By path: the musl root's PATH (/bin) is also the environment chroot is started with.
const CHROOT =
  spawnSync('sh', ['-c', 'command -v chroot'], {
    encoding: 'utf8',
    env: { PATH: SBIN_PATH },
  }).stdout.trim() || '/usr/sbin/chroot';

interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs without blocking this process (the agents under test answer while it waits). */
function run(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {},
): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: options.env ?? { PATH: SBIN_PATH },
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    if (child.stdin) {
      child.stdin.on('error', () => undefined); // a command that exits without reading it
      child.stdin.end(options.input);
    }
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.once('error', reject);
    child.once('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

function isMissing<T>(value: T | Missing): value is Missing {
  return typeof value === 'object' && value !== null && 'reason' in value;
}

/** A started agent: waits for its socket, stops it (SIGTERM, then SIGKILL) on stop(). */
async function serve(
  command: string,
  args: string[],
  socket: string,
  env: NodeJS.ProcessEnv = { PATH: SBIN_PATH },
): Promise<{ proc: ChildProcess; stop(): Promise<void> }> {
  const proc = spawn(command, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const deadline = Date.now() + 30_000;
  while (!existsSync(socket)) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`${command} ${args.join(' ')} did not listen on ${socket}:\n${stderr}`);
    }
    await sleep(50);
  }
  return {
    proc,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}

describe('release targets beyond linux-amd64', () => {
  let work: string;

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'lq-cross-'));
  });

  afterAll(() => {
    if (work) {
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('should answer ping, exec as nobody and a file round trip through its own agentctl when linux-arm64 runs under qemu-user', async () => {
    const libc = arm64Libc();
    if (isMissing(libc)) {
      console.warn(`linux-arm64 not run: ${libc.reason}`);
      return;
    }
    const arm64 = executable('linux-arm64');
    // The arm64 loader named explicitly, not qemu's -L prefix: with -L, qemu opens every
    // absolute path that exists under the prefix there, "/" included, so the agent's file walk
    // (which starts at "/" and checks where each descriptor really is) would see a different
    // tree than the one it names. Run this way, the agent sees this machine's filesystem.
    const loader = [
      join(libc, 'root/lib/ld-linux-aarch64.so.1'),
      '--library-path',
      join(libc, 'root/lib/aarch64-linux-gnu'),
      arm64,
    ];
    const qemu = (args: string[], input?: string) =>
      run('qemu-aarch64-static', [...loader, ...args], {
        ...(input === undefined ? {} : { input }),
        timeoutMs: 120_000,
      });
    const version = await qemu(['--version']);
    expect(version.stdout).toMatch(/ target linux-arm64\n$/);

    const dir = mkdtempSync(join(work, 'arm64-'));
    const socket = join(dir, 'agent.sock');
    writeFileSync(join(dir, 'agent.json'), JSON.stringify({ log_level: 'warn' }));
    const agent = await serve(
      'qemu-aarch64-static',
      [...loader, '--listen', socket, '--config', join(dir, 'agent.json')],
      socket,
    );
    try {
      const ctl = (args: string[], input?: string) =>
        qemu(['ctl', '--socket', socket, '--timeout', '60', ...args], input);
      const pong = await ctl(['ping']);
      expect(pong).toMatchObject({ status: 0, stderr: '' });
      expect(pong.stdout).toMatch(/^pong from agent \d+\.\d+\.\d+/);
      // The agent is the aarch64 process (qemu-user); the commands it runs are this machine's.
      const id = await ctl(['exec', '--user', 'nobody', '--', 'id', '-un']);
      expect(id).toMatchObject({ status: 0, stdout: 'nobody\n' });
      const file = join(dir, 'round-trip.bin');
      const content = `written through the arm64 agent ${'x'.repeat(100_000)}\n`;
      // The whole result, so a failure shows agentctl's stderr.
      expect(await ctl(['write', file], content)).toMatchObject({
        status: 0,
        stderr: `wrote ${content.length} bytes to ${file}\n`,
      });
      expect(readFileSync(file, 'utf8')).toBe(content);
      expect(await ctl(['read', file])).toMatchObject({ status: 0, stdout: content });
    } finally {
      await agent.stop();
    }
  }, 600_000);

  describe('the amd64 .deb in a Debian 12 root made by debootstrap', () => {
    let root: string | Missing;
    let deb: string;
    let mounted = false;

    beforeAll(() => {
      root = debianRoot(work);
      if (isMissing(root)) {
        return;
      }
      const out = join(work, 'packages');
      const built = spawnSync(
        process.execPath,
        ['deploy/packaging/build-packages.mjs', 'deb', '--arch', 'amd64', '--fast', '--out', out],
        { cwd: REPO_ROOT, encoding: 'utf8', timeout: 300_000 },
      );
      if (built.status !== 0) {
        throw new Error(`build-packages.mjs failed:\n${built.stdout}${built.stderr}`);
      }
      deb = join(out, `${PKG}_${VERSION}_amd64.deb`);
      mkdirSync(join(root, 'tmp/lq'), { recursive: true });
      writeFileSync(join(root, 'tmp/lq', 'agent.deb'), readFileSync(deb));
      // The agent reads /proc (telemetry, its own process group); a root of our own, unmounted
      // in afterAll.
      mounted = spawnSync('mount', ['-t', 'proc', 'proc', join(root, 'proc')]).status === 0;
    }, 900_000);

    afterAll(() => {
      if (!isMissing(root) && mounted) {
        spawnSync('umount', [join(root, 'proc')]);
      }
    });

    const inRoot = (args: string[], input?: string) =>
      run(CHROOT, [root as string, ...args], {
        env: { PATH: SBIN_PATH, LANG: 'C' },
        ...(input === undefined ? {} : { input }),
      });

    it('should install with dpkg -i in a root that has no Node.js, and its agent should run --check-config there', async () => {
      if (isMissing(root)) {
        console.warn(`.deb not installed into Debian 12: ${root.reason}`);
        return;
      }
      expect(await inRoot(['sh', '-c', 'command -v node nodejs; exit 0'])).toMatchObject({
        stdout: '',
      });
      const installed = await inRoot(['dpkg', '-i', '/tmp/lq/agent.deb']);
      expect(installed.status).toBe(0);
      expect(installed.stdout + installed.stderr).not.toMatch(/dependency problems|error/i);
      expect((await inRoot(['dpkg-query', '-W', '-f', '${Status} ${Version}', PKG])).stdout).toBe(
        `install ok installed ${VERSION}`,
      );
      const check = await inRoot(['limiquantix-agent', '--check-config']);
      expect(check).toMatchObject({ status: 0, stderr: '' });
      expect(JSON.parse(check.stdout)).toMatchObject({
        source: '/etc/limiquantix/agent.json',
        log_level: 'info',
      });
      expect((await inRoot(['limiquantix-agent', '--version'])).stdout).toMatch(
        / target linux-amd64\n$/,
      );
    }, 300_000);

    it('should serve its installed agentctl inside the root: ping and exec as nobody', async () => {
      if (isMissing(root)) {
        console.warn(`.deb not installed into Debian 12: ${root.reason}`);
        return;
      }
      const agent = await serve(
        CHROOT,
        [root, 'limiquantix-agent', '--listen', '/tmp/lq/agent.sock', '--log-level', 'warn'],
        join(root, 'tmp/lq/agent.sock'),
      );
      try {
        const pong = await inRoot([
          'limiquantix-agentctl',
          '--socket',
          '/tmp/lq/agent.sock',
          'ping',
        ]);
        expect(pong).toMatchObject({ status: 0, stderr: '' });
        const id = await inRoot([
          'limiquantix-agentctl',
          '--socket',
          '/tmp/lq/agent.sock',
          'exec',
          '--user',
          'nobody',
          '--supplementary-groups',
          '--',
          'id',
          '-un',
        ]);
        expect(id).toMatchObject({ status: 0, stdout: 'nobody\n' });
      } finally {
        await agent.stop();
      }
    }, 300_000);
  });

  it('should answer ping and exec when linux-amd64-musl runs in a root without glibc', async () => {
    const root = muslRoot(work);
    if (isMissing(root)) {
      console.warn(`linux-amd64-musl not run: ${root.reason}`);
      return;
    }
    writeFileSync(
      join(root, 'bin/limiquantix-agent'),
      readFileSync(executable('linux-amd64-musl')),
      {
        mode: 0o755,
      },
    );
    writeFileSync(join(root, 'etc/agent.json'), JSON.stringify({ log_level: 'warn' }));
    // No glibc loader or libc in the root: only musl's.
    expect(existsSync(join(root, 'lib64/ld-linux-x86-64.so.2'))).toBe(false);
    // LD_PRELOAD set inside the root (busybox env): chroot itself is glibc's and must not see it.
    const env = { PATH: '/bin' };
    const shim = ['/bin/env', 'LD_PRELOAD=/lib/libglibc-shim.so'];
    const inRoot = (args: string[]) => run(CHROOT, [root, ...shim, ...args], { env });
    expect((await inRoot(['/bin/limiquantix-agent', '--version'])).stdout).toMatch(
      / target linux-amd64-musl\n$/,
    );
    const agent = await serve(
      CHROOT,
      [
        root,
        ...shim,
        '/bin/limiquantix-agent',
        '--listen',
        '/tmp/agent.sock',
        '--config',
        '/etc/agent.json',
      ],
      join(root, 'tmp/agent.sock'),
      env,
    );
    try {
      const ctl = (args: string[]) =>
        inRoot(['/bin/limiquantix-agent', 'ctl', '--socket', '/tmp/agent.sock', ...args]);
      const pong = await ctl(['ping']);
      expect(pong).toMatchObject({ status: 0, stderr: '' });
      expect(await ctl(['exec', '--', 'sh', '-c', 'echo hello from $(uname -s)'])).toMatchObject({
        status: 0,
        stdout: 'hello from Linux\n',
      });
      expect(await ctl(['exec', '--user', 'nobody', '--', 'id', '-u'])).toMatchObject({
        status: 0,
        stdout: '65534\n',
        stderr: '',
      });
    } finally {
      await agent.stop();
    }
  }, 300_000);
});
