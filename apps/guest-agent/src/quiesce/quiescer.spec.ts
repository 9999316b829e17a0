import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { ErrorCode } from '@lq/proto';
import { defaultConfig, type AgentConfig } from '../config.js';
import { AgentOpError } from '../errors.js';
import { Logger } from '../logger.js';
import { Quiescer } from './quiescer.js';

// fsfreeze and the hooks are test doubles that log what they are asked: nothing is frozen.
describe('Quiescer', () => {
  let dir: string;
  let config: AgentConfig;
  let log: string;

  const script = (path: string, body: string) => {
    writeFileSync(path, `#!/bin/sh\n${body}\n`);
    chmodSync(path, 0o755);
  };
  const calls = () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : []);

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'lq-quiesce-'));
    log = join(dir, 'calls.log');
    const pre = join(dir, 'pre-freeze.d');
    const post = join(dir, 'post-thaw.d');
    mkdirSync(pre);
    mkdirSync(post);
    writeFileSync(
      join(dir, 'mounts'),
      [
        '/dev/vda2 / ext4 rw,relatime 0 0',
        'proc /proc proc rw 0 0',
        'tmpfs /run tmpfs rw 0 0',
        '/dev/vdb1 /mnt/data ext4 rw 0 0',
        '/dev/vdb1 /srv/bind ext4 rw 0 0',
        '/dev/vdc1 /mnt/ro xfs ro 0 0',
        '/dev/vdd1 /mnt/with\\040space xfs rw 0 0',
      ].join('\n') + '\n',
    );
    script(
      join(dir, 'fsfreeze'),
      `echo "fsfreeze $*" >> ${log}; [ -e "${dir}/fail-$(echo "$2" | tr / _)" ] && { echo "Device busy" >&2; exit 1; }; exit 0`,
    );
    for (const name of ['10-db', '20-app']) {
      script(
        join(pre, name),
        `echo "pre ${name} $1" >> ${log}; [ -e ${dir}/fail-hook-${name} ] && exit 3; exit 0`,
      );
      script(join(post, name), `echo "post ${name} $1" >> ${log}`);
    }
    config = defaultConfig();
    config.quiesce = {
      ...config.quiesce,
      pre_freeze_dir: pre,
      post_thaw_dir: post,
      hook_timeout_ms: 2000,
      state_file: join(dir, 'run', 'quiesce.json'),
      mounts_file: join(dir, 'mounts'),
    };
    config.commands.fsfreeze = [join(dir, 'fsfreeze')];
  });

  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('should run hooks ascending, freeze nested mounts first, and thaw in mount order with hooks descending', async () => {
    const q = new Quiescer(config, new Logger('silent'));
    const r = await q.quiesce([], 60);
    expect(r.frozen).toEqual(['/', '/mnt/data', '/mnt/with space']);
    expect(q.frozen).toBe(true);
    expect(JSON.parse(readFileSync(config.quiesce.state_file, 'utf8')).mounts).toEqual(r.frozen);
    const t = await q.thaw('request');
    expect(t).toMatchObject({ wasFrozen: true, thawed: r.frozen });
    expect(calls()).toEqual([
      'pre 10-db freeze',
      'pre 20-app freeze',
      'fsfreeze --freeze /mnt/with space',
      'fsfreeze --freeze /mnt/data',
      'fsfreeze --freeze /',
      'fsfreeze --unfreeze /',
      'fsfreeze --unfreeze /mnt/data',
      'fsfreeze --unfreeze /mnt/with space',
      'post 20-app thaw',
      'post 10-db thaw',
    ]);
    expect(existsSync(config.quiesce.state_file)).toBe(false);
    expect((await q.thaw('request')).wasFrozen).toBe(false);
  });

  it('should abort on a failing pre-freeze hook, name it, and run freezefail for the hooks that ran', async () => {
    writeFileSync(join(dir, 'fail-hook-20-app'), '');
    const q = new Quiescer(config, new Logger('silent'));
    const err = await q.quiesce(['/mnt/data'], 60).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentOpError);
    expect((err as AgentOpError).message).toMatch(/pre-freeze hook 20-app failed \(exit 3\)/);
    expect(q.frozen).toBe(false);
    expect(calls()).toEqual([
      'pre 10-db freeze',
      'pre 20-app freeze',
      'post 20-app freezefail',
      'post 10-db freezefail',
    ]);
  });

  it('should thaw what it froze when a later mount will not freeze', async () => {
    writeFileSync(join(dir, 'fail-_'), '');
    const q = new Quiescer(config, new Logger('silent'));
    const err = await q.quiesce(['/', '/mnt/data'], 60).catch((e: unknown) => e);
    expect((err as AgentOpError).code).toBe(ErrorCode.IO_ERROR);
    expect((err as AgentOpError).message).toContain('cannot freeze /');
    expect(calls().filter((c) => c.startsWith('fsfreeze'))).toEqual([
      'fsfreeze --freeze /mnt/data',
      'fsfreeze --freeze /',
      'fsfreeze --unfreeze /mnt/data',
    ]);
    expect(q.frozen).toBe(false);
    expect(existsSync(config.quiesce.state_file)).toBe(false);
  });

  it('should thaw by itself when the timeout passes without a thaw', async () => {
    const q = new Quiescer(config, new Logger('silent'));
    const started = Date.now();
    await q.quiesce(['/mnt/data'], 1);
    // Waits for the outcome (generously: timers run late on a busy machine).
    while (q.frozen && Date.now() - started < 20_000) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(q.frozen).toBe(false);
    expect(q.status().lastAutoThaw).toBeDefined();
    expect(calls()).toContain('fsfreeze --unfreeze /mnt/data');
  });

  it('should keep the watchdog across an agent restart through the state file', async () => {
    const first = new Quiescer(config, new Logger('silent'));
    await first.quiesce(['/mnt/data'], 1);
    first.stop(); // the agent dies: its timer with it
    const second = new Quiescer(config, new Logger('silent'));
    await second.restore();
    expect(second.frozen).toBe(true);
    expect(second.status().mountPoints).toEqual(['/mnt/data']);
    await new Promise((r) => setTimeout(r, 1300));
    expect(second.frozen).toBe(false);
    expect(existsSync(config.quiesce.state_file)).toBe(false);
  });

  it('should refuse a path that is not a mount point and a second freeze', async () => {
    const q = new Quiescer(config, new Logger('silent'));
    await expect(q.quiesce(['/etc'], 60)).rejects.toThrow('/etc is not a mount point');
    await expect(q.quiesce(['/mnt/ro'], 60)).rejects.toThrow('read-only');
    await expect(q.quiesce([], 999_999)).rejects.toThrow('max_timeout_seconds');
    await q.quiesce(['/mnt/data'], 60);
    await expect(q.quiesce(['/mnt/data'], 60)).rejects.toThrow('already frozen');
    await q.thaw('request');
  });
});
