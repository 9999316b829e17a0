import { describe, expect, it } from '@jest/globals';
import {
  bunSpawnOptions,
  chooseSpawner,
  nodeSpawnOptions,
  spawnChild,
  type BunRuntime,
  type BunSpawnOptions,
  type SpawnRequest,
} from './child-spawn.js';

const base: SpawnRequest = {
  file: '/bin/echo',
  args: ['a', 'b c'],
  cwd: '/tmp',
  env: { PATH: '/usr/bin:/bin', HOME: '/root' },
};

/** A stand-in for Bun's runtime: ReadableStreams fed by hand, an exit settled by hand. */
function fakeBun(opts: { throws?: Error } = {}) {
  const spawned: BunSpawnOptions[] = [];
  const stdinWrites: Uint8Array[] = [];
  let stdinEnded = false;
  let out!: ReadableStreamDefaultController<Uint8Array>;
  let err!: ReadableStreamDefaultController<Uint8Array>;
  let exit!: (code: number) => void;
  const state = { exitCode: null as number | null, signalCode: null as NodeJS.Signals | null };
  const runtime: BunRuntime = {
    spawn(options) {
      if (opts.throws) {
        throw opts.throws;
      }
      spawned.push(options);
      return {
        pid: 4242,
        stdin: options.stdin === 'ignore' ? undefined : {
          write: (d) => (stdinWrites.push(d), d.length),
          end: () => ((stdinEnded = true), 0),
        },
        stdout: new ReadableStream<Uint8Array>({ start: (c) => void (out = c) }),
        stderr: new ReadableStream<Uint8Array>({ start: (c) => void (err = c) }),
        exited: new Promise<number>((resolve) => (exit = resolve)),
        get exitCode() {
          return state.exitCode;
        },
        get signalCode() {
          return state.signalCode;
        },
      };
    },
  };
  return {
    runtime,
    spawned,
    stdinWrites,
    stdinEnded: () => stdinEnded,
    out: () => out,
    err: () => err,
    exit: (code: number | null, signal: NodeJS.Signals | null) => {
      state.exitCode = code;
      state.signalCode = signal;
      exit(code ?? 128 + 15);
    },
  };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

describe('chooseSpawner', () => {
  it('should use Bun.spawn under Bun', () => {
    expect(chooseSpawner({}, base)).toBe('bun');
  });

  it('should use child_process under Node', () => {
    expect(chooseSpawner(undefined, base)).toBe('node');
  });

  it('should keep plans with an fd-3 input (setpriv with groups) on child_process', () => {
    expect(chooseSpawner({}, { ...base, fd3Input: 'A=1\n' })).toBe('node');
  });
});

describe('spawn options', () => {
  it('should give Bun.spawn the same program, cwd, env, piped stdio and own process group', () => {
    expect(bunSpawnOptions(base)).toEqual({
      cmd: ['/bin/echo', 'a', 'b c'],
      cwd: '/tmp',
      env: { PATH: '/usr/bin:/bin', HOME: '/root' },
      stdin: 'pipe',
      stdout: 'pipe',
      stderr: 'pipe',
      detached: true,
    });
    expect(nodeSpawnOptions(base)).toEqual({
      cwd: '/tmp',
      env: { PATH: '/usr/bin:/bin', HOME: '/root' },
      detached: true,
      stdio: 'pipe',
    });
  });

  it('should pass uid and gid to both when the plan runs as another user', () => {
    const asUser = { ...base, uid: 1000, gid: 1001 };
    expect(bunSpawnOptions(asUser)).toMatchObject({ uid: 1000, gid: 1001 });
    expect(nodeSpawnOptions(asUser)).toMatchObject({ uid: 1000, gid: 1001 });
  });

  it('should not set credentials when the plan keeps the agent own', () => {
    expect(bunSpawnOptions(base)).not.toHaveProperty('uid');
    expect(bunSpawnOptions(base)).not.toHaveProperty('gid');
    expect(nodeSpawnOptions(base)).not.toHaveProperty('uid');
  });

  it('should give both /dev/null for stdin when there is no input', () => {
    const none = { ...base, noStdin: true };
    expect(bunSpawnOptions(none).stdin).toBe('ignore');
    expect(nodeSpawnOptions(none).stdio).toEqual(['ignore', 'pipe', 'pipe']);
    expect(nodeSpawnOptions({ ...none, fd3Input: 'A=1\n' }).stdio).toEqual([
      'ignore',
      'pipe',
      'pipe',
      'pipe',
    ]);
  });

  it('should give child_process a fourth pipe for an fd-3 input', () => {
    expect(nodeSpawnOptions({ ...base, fd3Input: 'A=1\n' }).stdio).toEqual([
      'pipe',
      'pipe',
      'pipe',
      'pipe',
    ]);
  });
});

describe('spawnChild through Bun.spawn', () => {
  it('should reject with the system error when Bun.spawn throws (ENOENT)', async () => {
    const e = Object.assign(new Error('ENOENT: no such file or directory'), { code: 'ENOENT' });
    const bun = fakeBun({ throws: e });
    await expect(spawnChild(base, bun.runtime)).rejects.toBe(e);
  });

  it('should deliver output, stdin, EOF and the exit status', async () => {
    const bun = fakeBun();
    const child = await spawnChild({ ...base, uid: 5, gid: 6 }, bun.runtime);
    expect(bun.spawned[0]).toMatchObject({ uid: 5, gid: 6, detached: true });
    expect(child.pid).toBe(4242);
    const chunks: string[] = [];
    let closed = 0;
    let exit: unknown;
    child.stdout.onData((c) => chunks.push(Buffer.from(c).toString()));
    child.stdout.onClose(() => closed++);
    child.stderr.onData(() => undefined);
    child.stderr.onClose(() => closed++);
    child.onExit((code, signal) => (exit = { code, signal }));
    child.endStdin(new Uint8Array([1, 2]));
    expect(bun.stdinWrites).toEqual([new Uint8Array([1, 2])]);
    expect(bun.stdinEnded()).toBe(true);
    bun.out().enqueue(Buffer.from('hello'));
    bun.out().close();
    bun.err().close();
    bun.exit(3, null);
    await tick();
    expect(chunks).toEqual(['hello']);
    expect(closed).toBe(2);
    expect(exit).toEqual({ code: 3, signal: null });
  });

  it('should close stdin without writing when there is no input', async () => {
    const bun = fakeBun();
    const child = await spawnChild(base, bun.runtime);
    child.endStdin(new Uint8Array(0));
    expect(bun.stdinWrites).toEqual([]);
    expect(bun.stdinEnded()).toBe(true);
  });

  it('should have nothing to close when stdin is /dev/null', async () => {
    const bun = fakeBun();
    const child = await spawnChild({ ...base, noStdin: true }, bun.runtime);
    expect(bun.spawned[0]?.stdin).toBe('ignore');
    child.endStdin(new Uint8Array(0));
    expect(bun.stdinEnded()).toBe(false);
  });

  it('should report a signal with no exit code', async () => {
    const bun = fakeBun();
    const child = await spawnChild(base, bun.runtime);
    let exit: unknown;
    child.onExit((code, signal) => (exit = { code, signal }));
    bun.exit(null, 'SIGKILL');
    await tick();
    expect(exit).toEqual({ code: null, signal: 'SIGKILL' });
  });

  it('should hold reading while paused and go on after resume', async () => {
    const bun = fakeBun();
    const child = await spawnChild(base, bun.runtime);
    const chunks: string[] = [];
    child.stdout.onData((c) => {
      chunks.push(Buffer.from(c).toString());
      child.stdout.pause();
    });
    bun.out().enqueue(Buffer.from('one'));
    bun.out().enqueue(Buffer.from('two'));
    await tick();
    expect(chunks).toEqual(['one']);
    child.stdout.resume();
    await tick();
    expect(chunks).toEqual(['one', 'two']);
  });

  it('should close the pipes on destroy even while output is pending', async () => {
    const bun = fakeBun();
    const child = await spawnChild(base, bun.runtime);
    let closed = 0;
    child.stdout.onData(() => child.stdout.pause());
    child.stdout.onClose(() => closed++);
    child.stderr.onData(() => undefined);
    child.stderr.onClose(() => closed++);
    bun.out().enqueue(Buffer.from('x'));
    await tick();
    child.destroy();
    await tick();
    expect(closed).toBe(2);
  });
});

describe('spawnChild through child_process', () => {
  it('should give a child without input an immediate EOF on stdin', async () => {
    const child = await spawnChild(
      { ...base, file: '/bin/sh', args: ['-c', 'cat; echo done'], noStdin: true },
      undefined,
    );
    const chunks: Buffer[] = [];
    const closed = new Promise<void>((resolve) => child.stdout.onClose(resolve));
    child.stdout.onData((c) => chunks.push(Buffer.from(c)));
    child.stderr.onData(() => undefined);
    child.endStdin(new Uint8Array(0));
    const exit = new Promise<unknown>((resolve) =>
      child.onExit((code, signal) => resolve({ code, signal })),
    );
    await closed;
    expect(await exit).toEqual({ code: 0, signal: null });
    expect(Buffer.concat(chunks).toString()).toBe('done\n');
    child.destroy();
  });

  it('should reject with ENOENT for a missing program', async () => {
    await expect(
      spawnChild({ ...base, file: '/nonexistent/program' }, undefined),
    ).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
