// The newcomer's path as root (issue 16, item 7, acceptance 5): a checkout under a directory
// others cannot enter (as /root is), then `npm ci && npm start`. PostgreSQL runs as the
// unprivileged user postgres, which cannot reach the checkout: npm start stages the binaries and
// the data where it can, and the stack comes up and stops cleanly. A real `git clone` of this
// repository (with this working tree's changes copied over it) and a real `npm ci`.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import {
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  rmdirSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { freePort } from '../support/nats-server.js';
import { REPO_ROOT } from '../support/service-process.js';

const STAGE_PARENT = '/var/lib/limiquantix-dev';
const asRoot = process.getuid?.() === 0;

/** Every process descending from `pid`. */
function descendants(pid: number): number[] {
  const rows = execFileSync('ps', ['-eo', 'pid=,ppid='], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .map((l) => l.trim().split(/\s+/).map(Number) as [number, number]);
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [child, parent] of rows) {
      if (parent === p) {
        out.push(child);
        walk(child);
      }
    }
  };
  walk(pid);
  return out;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** The working tree as a commit of it would be: a clone, then this tree's files over it. */
function cloneWorkingTree(into: string): void {
  execFileSync('git', ['clone', '-q', REPO_ROOT, into]);
  const files = execFileSync(
    'git',
    ['-C', REPO_ROOT, 'ls-files', '-z', '--cached', '--others', '--exclude-standard'],
    { encoding: 'utf8' },
  )
    .split('\0')
    .filter(Boolean);
  for (const f of files) {
    const from = join(REPO_ROOT, f);
    if (existsSync(from) && !statSync(from).isDirectory()) {
      mkdirSync(dirname(join(into, f)), { recursive: true });
      cpSync(from, join(into, f));
    }
  }
}

(asRoot ? describe : describe.skip)(
  'npm ci && npm start as root, from a checkout in a directory others cannot enter',
  () => {
    let outer: string;
    let checkout: string;
    let proc: ChildProcess | undefined;
    /** Every holder of npm start's output pipes is gone (start.mjs included). */
    let closed: Promise<void> = Promise.resolve();
    let output = '';
    let httpPort: number;
    let stagedBefore: string[] = [];

    beforeAll(() => {
      stagedBefore = existsSync(STAGE_PARENT) ? readdirSync(STAGE_PARENT) : [];
      outer = mkdtempSync(join(tmpdir(), 'lq-root-'));
      expect(statSync(outer).mode & 0o777).toBe(0o700);
      checkout = join(outer, 'lq');
      cloneWorkingTree(checkout);
      // The real install, from npm's cache where it can.
      execFileSync('npm', ['ci', '--no-audit', '--no-fund', '--prefer-offline'], {
        cwd: checkout,
        stdio: 'ignore',
      });
    }, 600_000);

    afterAll(() => {
      if (proc?.pid && proc.exitCode === null) {
        try {
          process.kill(-proc.pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      // What npm start staged for this checkout (and nothing it did not).
      const link = join(checkout, '.limiquantix', 'postgres');
      if (lstatSync(link, { throwIfNoEntry: false })?.isSymbolicLink()) {
        const stage = dirname(readlinkSync(link));
        if (
          dirname(stage) === STAGE_PARENT &&
          !stagedBefore.includes(stage.slice(STAGE_PARENT.length + 1))
        ) {
          rmSync(stage, { recursive: true, force: true });
        }
      }
      if (
        existsSync(STAGE_PARENT) &&
        readdirSync(STAGE_PARENT).length === 0 &&
        stagedBefore.length === 0
      ) {
        rmdirSync(STAGE_PARENT);
      }
      rmSync(outer, { recursive: true, force: true });
    });

    it('should bring the stack up, PostgreSQL staged where its user can reach it, and answer the printed curl', async () => {
      httpPort = await freePort();
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        LQ_HTTP_PORT: String(httpPort),
        LQ_GRPC_PORT: String(await freePort()),
      };
      for (const name of [
        'DATABASE_URL',
        'NATS_URL',
        'LQ_ADMIN_TOKEN',
        'LQ_DATA_DIR',
        'NODE_OPTIONS',
      ]) {
        delete env[name];
      }
      // Its own process group, as a terminal's foreground job: Ctrl-C reaches all of it.
      proc = spawn('npm', ['start'], {
        cwd: checkout,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      closed = new Promise<void>((resolve) => proc!.once('close', () => resolve()));
      await new Promise<void>((resolve, reject) => {
        const onData = (d: Buffer) => {
          output += d.toString();
          if (output.includes('Ctrl-C stops everything.')) {
            resolve();
          }
        };
        proc!.stdout!.on('data', onData);
        proc!.stderr!.on('data', onData);
        proc!.once('exit', (code) => reject(new Error(`npm start exited ${code}:\n${output}`)));
      });
      expect(output).toMatch(
        new RegExp(
          `the user postgres cannot enter ${outer} \\(mode 0700\\); its binaries and data are staged in ${STAGE_PARENT}/[0-9a-f]{12}`,
        ),
      );
      const staged = readlinkSync(join(checkout, '.limiquantix', 'postgres'));
      expect(statSync(staged).uid).toBe(
        Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })),
      );
      const line = output
        .split('\n')
        .find((l) => l.trim().startsWith('curl ') && l.includes('uname -a'));
      const reply = JSON.parse(execFileSync('sh', ['-c', line!.trim()], { encoding: 'utf8' })) as {
        exit_code: number;
        stdout: string;
      };
      expect(reply.exit_code).toBe(0);
      expect(reply.stdout).toMatch(/^Linux \S+ /);
      // The checkout stayed closed: nothing was opened up for the postgres user.
      expect(statSync(outer).mode & 0o777).toBe(0o700);
    }, 600_000);

    it('should stop everything on Ctrl-C and leave no process behind', async () => {
      const family = descendants(proc!.pid!);
      // Wait for 'close', not npm's exit: npm itself may end at once on SIGINT, as it does at a
      // terminal, while start.mjs stops things in order.
      process.kill(-proc!.pid!, 'SIGINT');
      await closed;
      expect(output).toContain('Stopping: VMs, node daemon, control plane, NATS, PostgreSQL');
      expect(output).toContain('Stopped. Data kept in .limiquantix');
      expect(family.filter(alive)).toEqual([]);
      expect(readFileSync(join(checkout, '.limiquantix', 'logs', 'postgres.log'), 'utf8')).toMatch(
        /database system is shut down/,
      );
    });
  },
);
