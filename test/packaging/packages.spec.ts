// The guest agent's release (deploy/packaging) as a guest gets it: every package and plain
// executable built from the executables of scripts/build-executables.mjs, inspected with each
// format's own tools, the amd64 .deb installed into a scratch root with its maintainer scripts
// running against that root, the installed agent answering the installed agentctl; and
// install-agent.sh on stubbed apt and Alpine systems, fetching from a release folder over HTTP.
// (The arm64 and musl executables run, and the .deb goes into a real Debian root, in
// cross-targets.spec.ts.)
import { spawn, spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PACKAGING = join(REPO_ROOT, 'deploy/packaging');
const TARGETS = ['linux-amd64', 'linux-arm64', 'linux-amd64-musl'];
const EXECUTABLES = TARGETS.map((t) => join(REPO_ROOT, 'dist/agent', `limiquantix-agent-${t}`));
const PKG = 'limiquantix-guest-agent';
const PACKAGE_JSON = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8'));
const VERSION = String(PACKAGE_JSON.version).replaceAll('-', '~');
const PORT = '/dev/virtio-ports/org.limiquantix.agent.0';
const DEVICE_UNIT = 'dev-virtio\\x2dports-org.limiquantix.agent.0.device';
const UNIT = 'limiquantix-agent.service';
// dpkg looks for ldconfig and start-stop-daemon in PATH, which lacks sbin for most users.
const PATH = `/usr/local/sbin:/usr/sbin:/sbin:${process.env.PATH ?? '/usr/bin:/bin'}`;

interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], options: SpawnSyncOptions = {}): Result {
  const r = spawnSync(command, args, {
    encoding: 'utf8',
    timeout: 120_000, // a safety net only: packages of 40 MB are slow to unpack on a busy machine
    env: { ...process.env, PATH },
    ...options,
  });
  if (r.error) {
    throw r.error;
  }
  return { status: r.status, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/**
 * run(), without blocking this process: for commands that talk to a server in this process (the
 * release folder install-agent.sh downloads from).
 */
function runAsync(
  command: string,
  args: string[],
  options: { env: NodeJS.ProcessEnv; cwd: string },
): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', reject);
    child.once('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/** Runs a command that must succeed; its output in the error otherwise. */
function ok(command: string, args: string[], options: SpawnSyncOptions = {}): string {
  const r = run(command, args, options);
  if (r.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited ${r.status}:\n${r.stdout}${r.stderr}`);
  }
  return r.stdout;
}

function has(tool: string): boolean {
  return run('sh', ['-c', `command -v ${tool}`]).status === 0;
}

function syntaxError(script: string): string | null {
  const r = run('sh', ['-n'], { input: script });
  return r.status === 0 ? null : r.stderr;
}

/** `dpkg-deb -c` / `rpm -qlv` style listing: path → "mode owner/group". */
function debListing(deb: string): Map<string, string> {
  const entries = new Map<string, string>();
  for (const line of ok('dpkg-deb', ['-c', deb]).trim().split('\n')) {
    const [mode, owner, , , , path] = line.split(/\s+/);
    entries.set(path!.replace(/^\.\//, '/').replace(/(.)\/$/, '$1'), `${mode} ${owner}`);
  }
  return entries;
}

/** The ELF machine of a file: 62 x86-64, 183 aarch64. */
function elfMachine(path: string): number {
  const head = readFileSync(path).subarray(0, 20);
  expect(head.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
  return head.readUInt16LE(18);
}

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

describe('guest agent release', () => {
  let work: string;
  let out: string;
  let deb: string;
  let rpm: string;
  let root: string;
  let installOutput: string;
  const files = {
    debArm64: '',
    rpmArm64: '',
  };

  const dpkg = (...args: string[]): Result =>
    run('dpkg', [
      `--root=${root}`,
      `--admindir=${root}/var/lib/dpkg`,
      `--log=${work}/dpkg.log`,
      '--force-not-root',
      '--force-depends',
      '--force-script-chrootless',
      ...args,
    ]);

  beforeAll(() => {
    if (!EXECUTABLES.every((b) => existsSync(b))) {
      ok(process.execPath, ['scripts/build.mjs'], { cwd: REPO_ROOT });
      ok(process.execPath, ['scripts/build-executables.mjs'], { cwd: REPO_ROOT, timeout: 300_000 });
    }
    work = mkdtempSync(join(tmpdir(), 'lq-packaging-'));
    out = join(work, 'packages');
    // Every format and architecture, as `npm run package` builds them (xz level 0: --fast).
    // CI installs rpmbuild (Debian's `rpm` package): its absence fails these tests.
    ok(process.execPath, [join(PACKAGING, 'build-packages.mjs'), '--fast', '--out', out], {
      cwd: REPO_ROOT,
      timeout: 300_000,
    });
    deb = join(out, `${PKG}_${VERSION}_amd64.deb`);
    rpm = join(out, `${PKG}-${VERSION}-1.x86_64.rpm`);
    files.debArm64 = join(out, `${PKG}_${VERSION}_arm64.deb`);
    files.rpmArm64 = join(out, `${PKG}-${VERSION}-1.aarch64.rpm`);

    root = join(work, 'root');
    mkdirSync(join(root, 'var/lib/dpkg/updates'), { recursive: true });
    mkdirSync(join(root, 'var/lib/dpkg/info'));
    writeFileSync(join(root, 'var/lib/dpkg/status'), '');
    const installed = dpkg('-i', deb);
    if (installed.status !== 0) {
      throw new Error(`dpkg -i failed:\n${installed.stdout}${installed.stderr}`);
    }
    installOutput = installed.stdout + installed.stderr;
  }, 600_000);

  afterAll(() => {
    if (work) {
      rmSync(work, { recursive: true, force: true });
    }
  });

  describe('artifacts', () => {
    it('should name every file as the seed does, with SHA256SUMS covering them', () => {
      const names = [
        `${PKG}_${VERSION}_amd64.deb`,
        `${PKG}_${VERSION}_arm64.deb`,
        `${PKG}-${VERSION}-1.x86_64.rpm`,
        `${PKG}-${VERSION}-1.aarch64.rpm`,
        'limiquantix-agent-linux-amd64',
        'limiquantix-agent-linux-arm64',
        'limiquantix-agent-linux-amd64-musl',
        'install-agent.sh',
      ];
      const sums = readFileSync(join(out, 'SHA256SUMS'), 'utf8').trim().split('\n');
      expect(sums.map((l) => l.split('  ')[1]).sort()).toEqual([...names].sort());
      for (const line of sums) {
        const [hash, name] = line.split('  ');
        expect({ name, hash }).toEqual({ name, hash: sha256(join(out, name!)) });
      }
      // sha256sum itself agrees (what a user runs).
      expect(ok('sha256sum', ['-c', 'SHA256SUMS'], { cwd: out })).not.toMatch(/FAILED/);
      const release = JSON.parse(readFileSync(join(out, 'release.json'), 'utf8'));
      expect(release).toMatchObject({ name: PKG, version: VERSION, files: [...names].sort() });
      expect(release.commit).toMatch(/^([0-9a-f]{12}(-dirty)?|unknown)$/);
    });

    it('should ship executables for x86-64 and aarch64, and the amd64 one should name its version, commit and target', () => {
      expect(elfMachine(join(out, 'limiquantix-agent-linux-amd64'))).toBe(62);
      expect(elfMachine(join(out, 'limiquantix-agent-linux-amd64-musl'))).toBe(62);
      expect(elfMachine(join(out, 'limiquantix-agent-linux-arm64'))).toBe(183);
      const musl = readFileSync(join(out, 'limiquantix-agent-linux-amd64-musl')).toString('latin1');
      expect(musl).toContain('/lib/ld-musl-x86_64.so.1');
      for (const t of TARGETS) {
        expect(statSync(join(out, `limiquantix-agent-${t}`)).mode & 0o777).toBe(0o755);
      }
      expect(ok(join(out, 'limiquantix-agent-linux-amd64'), ['--version'])).toMatch(
        new RegExp(
          `^${PACKAGE_JSON.version} \\(protocol \\d+\\) commit \\S+ target linux-amd64\\n$`,
        ),
      );
    });
  });

  describe('.deb', () => {
    const fieldsOf = (file: string) => {
      const fields = ok('dpkg-deb', ['-f', file]);
      return (name: string) => new RegExp(`^${name}: (.*)$`, 'm').exec(fields)?.[1];
    };

    it('should declare its name, version, architecture, maintainer, description and no nodejs dependency', () => {
      const field = fieldsOf(deb);
      expect(field('Package')).toBe(PKG);
      expect(field('Version')).toBe(VERSION);
      expect(field('Architecture')).toBe('amd64');
      expect(field('Depends')).toBe('libc6 (>= 2.17)');
      expect(ok('dpkg-deb', ['-I', deb])).not.toMatch(/node/i);
      // It takes over from the Node.js package of earlier releases.
      expect(field('Replaces')).toBe('limiquantix-agent');
      expect(field('Conflicts')).toBe('limiquantix-agent');
      expect(field('Maintainer')).toMatch(/^\S.* <[^@\s]+@[^@\s]+>$/);
      expect(field('Description')).toMatch(/guest agent/i);
      const arm = fieldsOf(files.debArm64);
      expect([arm('Package'), arm('Architecture'), arm('Depends')]).toEqual([
        PKG,
        'arm64',
        'libc6 (>= 2.17)',
      ]);
    });

    it('should hold the executable, agentctl, config, hook folders, unit and udev rule, all root-owned, when listed', () => {
      const entries = debListing(deb);
      expect(Object.fromEntries(entries)).toMatchObject({
        '/usr/bin/limiquantix-agent': '-rwxr-xr-x root/root',
        '/usr/bin/limiquantix-agentctl': '-rwxr-xr-x root/root',
        '/etc/limiquantix/agent.json': '-rw-r--r-- root/root',
        '/etc/limiquantix/pre-freeze.d': 'drwxr-xr-x root/root',
        '/etc/limiquantix/pre-freeze.d/README': '-rw-r--r-- root/root',
        '/etc/limiquantix/post-thaw.d': 'drwxr-xr-x root/root',
        '/etc/limiquantix/post-thaw.d/README': '-rw-r--r-- root/root',
        [`/lib/systemd/system/${UNIT}`]: '-rw-r--r-- root/root',
        '/lib/udev/rules.d/99-limiquantix-agent.rules': '-rw-r--r-- root/root',
        [`/usr/share/doc/${PKG}/README.md`]: '-rw-r--r-- root/root',
      });
      for (const [path, mode] of entries) {
        expect({ path, owner: mode.split(' ')[1] }).toEqual({ path, owner: 'root/root' });
        if (mode.startsWith('d')) {
          expect({ path, mode }).toEqual({ path, mode: 'drwxr-xr-x root/root' });
        }
      }
      // Nothing of a Node.js install: no bundle, no launcher looking for node.
      expect([...entries.keys()].filter((p) => /\.c?js$|node/.test(p))).toEqual([]);
      // The arm64 package carries the aarch64 executable.
      const x = join(work, 'arm64-deb');
      ok('dpkg-deb', ['-x', files.debArm64, x]);
      expect(elfMachine(join(x, 'usr/bin/limiquantix-agent'))).toBe(183);
    });

    it('should ship executable maintainer scripts that pass sh -n, and every /etc file as a conffile, when extracted', () => {
      const control = join(work, 'deb-control');
      ok('dpkg-deb', ['-e', deb, control]);
      for (const script of ['postinst', 'prerm', 'postrm']) {
        const path = join(control, script);
        expect({ script, mode: statSync(path).mode & 0o777 }).toEqual({ script, mode: 0o755 });
        const text = readFileSync(path, 'utf8');
        expect(text.startsWith('#!/bin/sh\n')).toBe(true);
        expect(text).not.toContain('#COMMON#');
        expect({ script, error: syntaxError(text) }).toEqual({ script, error: null });
      }
      const etcFiles = [...debListing(deb).entries()]
        .filter(([p, mode]) => p.startsWith('/etc/') && mode.startsWith('-'))
        .map(([p]) => p);
      expect(readFileSync(join(control, 'conffiles'), 'utf8').trim().split('\n').sort()).toEqual(
        etcFiles.sort(),
      );
    });

    it('should land every file in a scratch root and enable the unit there when installed with dpkg --root', () => {
      for (const path of [
        'usr/bin/limiquantix-agent',
        'usr/bin/limiquantix-agentctl',
        'etc/limiquantix/agent.json',
        'etc/limiquantix/pre-freeze.d/README',
        'etc/limiquantix/post-thaw.d/README',
        `lib/systemd/system/${UNIT}`,
        'lib/udev/rules.d/99-limiquantix-agent.rules',
      ]) {
        expect({ path, file: existsSync(join(root, path)) }).toEqual({ path, file: true });
      }
      expect(
        ok('dpkg-query', [
          `--admindir=${root}/var/lib/dpkg`,
          '-W',
          '-f',
          '${Status} ${Version}',
          PKG,
        ]),
      ).toBe(`install ok installed ${VERSION}`);
      // md5sums agree with what was installed.
      expect(dpkg('--verify', PKG)).toMatchObject({ status: 0, stdout: '' });

      const link = join(root, 'etc/systemd/system', `${DEVICE_UNIT}.wants`, UNIT);
      if (has('systemctl')) {
        // postinst ran `systemctl --root=$DPKG_ROOT enable`: offline, nothing started.
        expect(readlinkSync(link)).toBe(`/lib/systemd/system/${UNIT}`);
      } else {
        expect(installOutput).toContain('no systemctl');
      }
      expect(installOutput).not.toMatch(/could not|failed/i);
    });

    it('should install the agent defaults as agent.json and a unit and rule bound to the port', () => {
      const installedConfig = join(root, 'etc/limiquantix/agent.json');
      const config = JSON.parse(readFileSync(installedConfig, 'utf8'));
      const empty = join(work, 'empty.json');
      writeFileSync(empty, '{}');
      const defaults = JSON.parse(
        ok(join(root, 'usr/bin/limiquantix-agent'), ['--check-config', '--config', empty]),
      );
      delete defaults.source;
      // The defaults, but for how a self-update restarts under the unit: systemctl restarts the
      // unit the package installs, and the watchdog runs outside its cgroup (systemd-run).
      expect(config).toEqual({
        ...defaults,
        update: {
          ...defaults.update,
          restart_command: ['/bin/systemctl', 'restart', UNIT.replace(/\.service$/, '')],
          watchdog_launcher: [
            '/usr/bin/systemd-run',
            '--collect',
            '--quiet',
            '--unit=limiquantix-agent-update-watchdog',
            '--',
          ],
        },
      });
      // The agent accepts it as it is.
      ok(join(root, 'usr/bin/limiquantix-agent'), ['--check-config', '--config', installedConfig]);

      const unit = readFileSync(join(root, 'lib/systemd/system', UNIT), 'utf8');
      const directives = unit.split('\n').filter((l) => /^[A-Za-z]+=/.test(l));
      expect(directives).toEqual(
        expect.arrayContaining([
          `BindsTo=${DEVICE_UNIT}`,
          `After=${DEVICE_UNIT}`,
          `ConditionPathExists=${PORT}`,
          `ExecStart=/usr/bin/limiquantix-agent --device ${PORT}`,
          'Restart=always',
          `WantedBy=${DEVICE_UNIT}`,
        ]),
      );
      // Root, on purpose (see the unit's comment): no User=, no sandbox that would change what
      // the commands it runs see or may do.
      expect(
        directives.filter((d) =>
          /^(User|DynamicUser|NoNewPrivileges|Protect\w+|Private\w+)=/.test(d),
        ),
      ).toEqual([]);

      const rules = readFileSync(join(root, 'lib/udev/rules.d/99-limiquantix-agent.rules'), 'utf8')
        .split('\n')
        .filter((l) => l && !l.startsWith('#'));
      expect(rules).toEqual([
        `SUBSYSTEM=="virtio-ports", ATTR{name}=="org.limiquantix.agent.0", TAG+="systemd", ENV{SYSTEMD_WANTS}="${UNIT}"`,
      ]);
    });

    it('should pass systemd-analyze verify when systemd-analyze is installed', () => {
      if (
        !has('systemd-analyze') ||
        !run('systemd-analyze', ['--help']).stdout.includes('--root')
      ) {
        console.warn(
          'systemd-analyze (with --root, systemd >= 251) not installed: unit not verified',
        );
        return;
      }
      // The scratch root has no systemd: stand-ins for the targets every service depends on.
      const units = join(root, 'usr/lib/systemd/system');
      mkdirSync(units, { recursive: true });
      for (const target of ['sysinit.target', 'basic.target', 'shutdown.target']) {
        writeFileSync(join(units, target), '[Unit]\nDescription=stand-in\n');
      }
      const r = run('systemd-analyze', [
        'verify',
        '--man=no',
        `--root=${root}`,
        `/lib/systemd/system/${UNIT}`,
      ]);
      // verify exits 0 after mere warnings (an unknown key, a bad value): none are allowed.
      expect({ status: r.status, output: (r.stdout + r.stderr).trim() }).toEqual({
        status: 0,
        output: '',
      });
      for (const target of ['sysinit.target', 'basic.target', 'shutdown.target']) {
        rmSync(join(units, target));
      }
    });

    it('should answer ping, exec and a file round trip from the installed agentctl when the installed agent serves a socket', async () => {
      const socket = join(work, 'agent.sock');
      const agent = spawn(
        join(root, 'usr/bin/limiquantix-agent'),
        [
          '--listen',
          socket,
          '--config',
          join(root, 'etc/limiquantix/agent.json'),
          '--log-level',
          'warn',
        ],
        // No Node.js on the agent's PATH: it needs none.
        { stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } },
      );
      let stderr = '';
      agent.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise((resolve) => agent.once('exit', resolve));
      const ctl = (args: string[], input?: string) =>
        run(join(root, 'usr/bin/limiquantix-agentctl'), ['--socket', socket, ...args], {
          env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
          ...(input === undefined ? {} : { input }),
        });
      try {
        const deadline = Date.now() + 10_000;
        while (!existsSync(socket)) {
          if (agent.exitCode !== null || Date.now() > deadline) {
            throw new Error(`the installed agent did not listen on ${socket}:\n${stderr}`);
          }
          await new Promise((r) => setTimeout(r, 20));
        }
        const pong = ctl(['ping']);
        expect(pong.stderr).toBe('');
        expect(pong.status).toBe(0);
        expect(pong.stdout).toMatch(/^pong from agent \d+\.\d+\.\d+/);
        expect(ctl(['exec', '--user', 'nobody', '--', 'id', '-un'])).toMatchObject({
          status: 0,
          stdout: 'nobody\n',
        });
        const file = join(work, 'round-trip.txt');
        expect(ctl(['write', file], 'written by agentctl\n').status).toBe(0);
        expect(ctl(['read', file])).toMatchObject({ status: 0, stdout: 'written by agentctl\n' });
      } finally {
        agent.kill('SIGTERM');
        await exited;
      }
    });

    it('should keep an edited agent.json when the package is installed again', () => {
      const path = join(root, 'etc/limiquantix/agent.json');
      const edited = { ...JSON.parse(readFileSync(path, 'utf8')), log_level: 'debug' };
      writeFileSync(path, `${JSON.stringify(edited, null, 2)}\n`);
      const again = dpkg('-i', deb);
      expect(again.status).toBe(0);
      expect(JSON.parse(readFileSync(path, 'utf8')).log_level).toBe('debug');
    });

    it('should take the unit, rule and enable link away but keep the config when removed, and the config too when purged', () => {
      expect(dpkg('-r', PKG).status).toBe(0);
      for (const gone of [
        `lib/systemd/system/${UNIT}`,
        'lib/udev/rules.d/99-limiquantix-agent.rules',
        'usr/bin/limiquantix-agent',
        'usr/bin/limiquantix-agentctl',
        `etc/systemd/system/${DEVICE_UNIT}.wants`,
      ]) {
        expect({ gone, exists: existsSync(join(root, gone)) }).toEqual({ gone, exists: false });
      }
      expect(existsSync(join(root, 'etc/limiquantix/agent.json'))).toBe(true);
      expect(dpkg('--purge', PKG).status).toBe(0);
      expect(existsSync(join(root, 'etc/limiquantix'))).toBe(false);
    });
  });

  describe('.rpm', () => {
    it('should declare its name, version, release, architecture and licence when queried', () => {
      for (const [file, arch] of [
        [rpm, 'x86_64'],
        [files.rpmArm64, 'aarch64'],
      ] as const) {
        const info = ok('rpm', ['-qip', file]);
        const field = (name: string) => new RegExp(`^${name}\\s*: (.*)$`, 'm').exec(info)?.[1];
        expect(field('Name')).toBe(PKG);
        expect(field('Version')).toBe(VERSION);
        expect(field('Release')).toBe('1');
        expect(field('Architecture')).toBe(arch);
        expect(field('License')).toBeTruthy();
        expect(field('Summary')).toMatch(/guest agent/i);
      }
    });

    it('should require glibc and util-linux, never nodejs, and replace the Node.js package', () => {
      for (const [file, loader] of [
        [rpm, 'ld-linux-x86-64.so.2'],
        [files.rpmArm64, 'ld-linux-aarch64.so.1'],
      ] as const) {
        const requires = ok('rpm', ['-qpR', file]).trim().split('\n');
        expect(requires.filter((r) => /node/i.test(r))).toEqual([]);
        expect(requires).toEqual(expect.arrayContaining(['util-linux', `${loader}()(64bit)`]));
        expect(
          requires.filter((r) => !/^(\/bin\/sh|util-linux|rpmlib\(|config\(|lib|ld-)/.test(r)),
        ).toEqual([]);
        expect(ok('rpm', ['-qp', '--obsoletes', file])).toMatch(/^limiquantix-agent < /m);
      }
    });

    it('should hold what the .deb holds, with the unit and rule under /usr/lib, and noreplace config', () => {
      const listed = ok('rpm', [
        '-qp',
        '--qf',
        '[%{FILEMODES:perms} %{FILEUSERNAME}/%{FILEGROUPNAME} %{FILENAMES}\n]',
        rpm,
      ]);
      const rpmEntries = listed
        .trim()
        .split('\n')
        .map((line) => line.split(' '))
        .map(([mode, owner, path]) => [path!, `${mode} ${owner}`] as const);
      // The same files with the same modes and owners; only the unit and rule move to /usr/lib.
      const debFiles = [...debListing(deb)]
        .filter(([, mode]) => mode.startsWith('-'))
        .map(([path, mode]) => [path.replace(/^\/lib\//, '/usr/lib/'), mode]);
      const rpmFiles = rpmEntries.filter(([, mode]) => mode.startsWith('-'));
      expect(Object.fromEntries(rpmFiles)).toEqual(Object.fromEntries(debFiles));
      // It owns its own directories, and no system one.
      expect(rpmEntries.filter(([, mode]) => mode.startsWith('d')).sort()).toEqual([
        ['/etc/limiquantix', 'drwxr-xr-x root/root'],
        ['/etc/limiquantix/post-thaw.d', 'drwxr-xr-x root/root'],
        ['/etc/limiquantix/pre-freeze.d', 'drwxr-xr-x root/root'],
      ]);
      const flags = ok('rpm', ['-qp', '--qf', '[%{FILENAMES} %{FILEFLAGS:fflags}\n]', rpm]);
      for (const conf of [
        '/etc/limiquantix/agent.json',
        '/etc/limiquantix/pre-freeze.d/README',
        '/etc/limiquantix/post-thaw.d/README',
      ]) {
        // c: %config, n: noreplace.
        expect(flags).toMatch(new RegExp(`^${conf} cn$`, 'm'));
      }
    });

    it('should carry %post, %preun and %postun scriptlets that pass sh -n, shared functions intact', () => {
      const scripts = ok('rpm', ['-qp', '--scripts', rpm]);
      expect(scripts).toMatch(/^postinstall scriptlet \(using \/bin\/sh\):/m);
      expect(scripts).toMatch(/^preuninstall scriptlet \(using \/bin\/sh\):/m);
      expect(scripts).toMatch(/^postuninstall scriptlet \(using \/bin\/sh\):/m);
      const common = readFileSync(join(PACKAGING, 'maintainer-common.sh'), 'utf8').trimEnd();
      for (const tag of ['POSTIN', 'PREUN', 'POSTUN']) {
        const text = ok('rpm', ['-qp', '--qf', `%{${tag}}`, rpm]);
        expect({ tag, error: syntaxError(text) }).toEqual({ tag, error: null });
        // rpm expands macros in scriptlets: the inserted functions must come out unchanged.
        expect(text).toContain(common);
      }
    });

    it('should unpack into a scratch root and run from there when installed with rpm --root', () => {
      const rpmRoot = join(work, 'rpm-root');
      ok(
        'rpm',
        [
          '--root',
          rpmRoot,
          '--dbpath',
          join(rpmRoot, 'var/lib/rpm'),
          '--nodeps',
          '--noscripts',
          '--nosignature',
          '-i',
          rpm,
        ],
        // 110 MB to unpack: slow when the machine is busy.
        { env: { PATH, HOME: work }, timeout: 180_000 },
      );
      expect(existsSync(join(rpmRoot, `usr/lib/systemd/system/${UNIT}`))).toBe(true);
      expect(lstatSync(join(rpmRoot, 'usr/bin/limiquantix-agent')).mode & 0o777).toBe(0o755);
      const version = ok(join(rpmRoot, 'usr/bin/limiquantix-agent'), ['--version']);
      expect(version).toMatch(/^\d+\.\d+\.\d+ \(protocol \d+\) commit \S+ target linux-amd64$/m);
    });
  });

  describe('install-agent.sh', () => {
    const script = () => join(out, 'install-agent.sh');
    let server: Server;
    let base: string;
    let served: string;

    beforeAll(async () => {
      // A release folder over HTTP, as the control plane's /downloads/agent/latest serves one.
      served = join(work, 'served');
      mkdirSync(served);
      for (const f of readdirSync(out)) {
        symlinkSync(join(out, f), join(served, f));
      }
      server = createServer((req, res) => {
        const name = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname.slice(1));
        const file = join(served, name);
        if (name.includes('/') || !existsSync(file)) {
          res.writeHead(404).end('not found\n');
          return;
        }
        res.writeHead(200, { 'content-length': statSync(file).size });
        res.end(readFileSync(file));
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });

    afterAll(async () => {
      await new Promise((r) => server?.close(r));
    });

    /**
     * A guest: PATH holds only the real tools the script uses and stubs of the system's tools,
     * which log their calls. `family` decides which package tools exist; `installed` is what
     * dpkg knows; `arch` is what uname -m says. `root` is a directory standing in for /.
     */
    function guest(options: {
      family: 'apt' | 'alpine' | 'systemd';
      uid?: number;
      arch?: string;
      installed?: string;
    }) {
      const dir = mkdtempSync(join(work, 'guest-'));
      const bin = join(dir, 'bin');
      mkdirSync(bin);
      const tools = ['sh', 'cat', 'chmod', 'mktemp', 'rm', 'tr', 'sed', 'sleep', 'tar', 'curl'];
      tools.push('cut', 'sha256sum', 'mkdir', 'cp', 'mv', 'ls', 'head', 'grep', 'basename', 'ln');
      tools.push('readlink');
      if (options.family === 'apt') {
        tools.push('dpkg-deb');
      }
      for (const tool of tools) {
        const real = run('sh', ['-c', `command -v ${tool}`]).stdout.trim();
        symlinkSync(real, join(bin, tool));
      }
      const log = join(dir, 'calls.log');
      const state = join(dir, 'installed');
      if (options.installed) {
        writeFileSync(state, options.installed);
      }
      const stub = (name: string, body: string) => {
        writeFileSync(join(bin, name), `#!/bin/sh\necho "${name} $*" >> '${log}'\n${body}\n`);
        chmodSync(join(bin, name), 0o755);
      };
      stub('id', `echo ${options.uid ?? 0}`);
      stub('uname', `echo ${options.arch ?? 'x86_64'}`);
      const root = join(dir, 'root');
      mkdirSync(root);
      if (options.family === 'apt') {
        stub('dpkg', 'exit 0');
        stub(
          'dpkg-query',
          `[ -f '${state}' ] || exit 1\nprintf 'install ok installed|%s' "$(cat '${state}')"`,
        );
        stub(
          'apt-get',
          `case " $* " in *" install "*) printf '%s' '${VERSION}' > '${state}' ;; esac`,
        );
      } else if (options.family === 'alpine') {
        // musl's loader and OpenRC, as an Alpine root has them.
        mkdirSync(join(root, 'lib'));
        writeFileSync(join(root, 'lib/ld-musl-x86_64.so.1'), '');
        mkdirSync(join(root, 'etc/init.d'), { recursive: true });
        mkdirSync(join(root, 'sbin'));
        writeFileSync(join(root, 'sbin/openrc-run'), '');
      } else {
        mkdirSync(join(root, 'etc/systemd/system'), { recursive: true });
      }
      const env = { PATH: bin, HOME: dir, TMPDIR: dir };
      return {
        root,
        run: (args: string[], extra: Record<string, string> = {}) =>
          runAsync(join(bin, 'sh'), [script(), ...args], { env: { ...env, ...extra }, cwd: dir }),
        calls: () => (existsSync(log) ? readFileSync(log, 'utf8') : ''),
      };
    }

    it('should pass sh -n, carry no unfilled marker, and describe its variables when asked for --help', () => {
      const text = readFileSync(script(), 'utf8');
      expect(syntaxError(text)).toBeNull();
      expect(text).not.toMatch(/#(UNIT|UDEV_RULE|OPENRC|AGENTCTL|UPDATE_SYSTEMD|UPDATE_OPENRC)#|@VERSION@/);
      const help = run('sh', [script(), '--help']);
      expect(help.status).toBe(0);
      for (const word of [
        'LQ_AGENT_PACKAGE',
        'LQ_AGENT_BASE_URL',
        'LQ_AGENT_VERSION',
        'SHA256SUMS',
        'uname -m',
      ]) {
        expect(help.stdout).toContain(word);
      }
    });

    it('should pick the amd64 .deb from the release folder, verify it and install it without nodejs', async () => {
      const g = guest({ family: 'apt' });
      const r = await g.run([], { LQ_AGENT_BASE_URL: base });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(r.stdout).toContain(`downloading ${base}/${PKG}_${VERSION}_amd64.deb`);
      expect(r.stdout).toContain(`installed ${PKG} ${VERSION}`);
      expect(r.stdout).toContain(`${PORT} is not present`);
      expect(g.calls()).toMatch(
        /^apt-get install -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \S+_amd64\.deb$/m,
      );
      expect(g.calls()).not.toMatch(/nodejs|apt-get update/);
    });

    it('should pick the arm64 .deb on an aarch64 guest, and refuse an amd64 .deb there', async () => {
      const g = guest({ family: 'apt', arch: 'aarch64' });
      const r = await g.run([], { LQ_AGENT_BASE_URL: base });
      expect(r.status).toBe(0);
      expect(r.stdout).toContain(`${PKG}_${VERSION}_arm64.deb`);
      const wrong = await guest({ family: 'apt', arch: 'aarch64' }).run([deb]);
      expect(wrong.status).toBe(1);
      expect(wrong.stderr).toMatch(/is for amd64, this guest is arm64/);
      const odd = await guest({ family: 'apt', arch: 'riscv64' }).run([deb]);
      expect(odd.status).toBe(1);
      expect(odd.stderr).toMatch(/unsupported architecture/);
    });

    it('should refuse a download whose checksum differs from SHA256SUMS', async () => {
      const bad = join(served, `${PKG}_${VERSION}_amd64.deb`);
      rmSync(bad);
      writeFileSync(bad, 'not the package');
      try {
        const r = await guest({ family: 'apt' }).run([], { LQ_AGENT_BASE_URL: base });
        expect(r.status).toBe(1);
        expect(r.stderr).toMatch(
          /but SHA256SUMS says [0-9a-f]{64} \(a corrupted or altered download\)/,
        );
      } finally {
        rmSync(bad);
        symlinkSync(deb, bad);
      }
    });

    it('should do nothing when the same version is already installed', async () => {
      const g = guest({ family: 'apt', installed: VERSION });
      const r = await g.run([deb]);
      expect(r.status).toBe(0);
      expect(r.stdout).toContain(`${PKG} ${VERSION} is already installed`);
      expect(g.calls()).not.toContain('apt-get');
    });

    it('should refuse an .rpm on a guest that installs .deb packages, and a user who is not root', async () => {
      const g = guest({ family: 'apt' });
      const wrong = await g.run([rpm]);
      expect(wrong.status).toBe(1);
      expect(wrong.stderr).toMatch(/is a \.rpm package, but this system installs \.deb packages/);
      const user = await guest({ family: 'apt', uid: 1000 }).run([deb]);
      expect(user.status).toBe(1);
      expect(user.stderr).toMatch(/must run as root/);
      const missing = await g.run([join(work, 'nowhere.deb')]);
      expect(missing.status).toBe(1);
      expect(missing.stderr).toMatch(/no such file: .*nowhere\.deb/);
    });

    it('should install the musl executable with an OpenRC service on an Alpine root', async () => {
      const g = guest({ family: 'alpine' });
      const r = await g.run([], { LQ_AGENT_BASE_URL: base, LQ_INSTALL_ROOT: g.root });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(r.stdout).toContain('limiquantix-agent-linux-amd64-musl');
      expect(r.stdout).toContain('OpenRC service limiquantix-agent');
      expect(sha256(join(g.root, 'usr/bin/limiquantix-agent'))).toBe(
        sha256(join(out, 'limiquantix-agent-linux-amd64-musl')),
      );
      const service = readFileSync(join(g.root, 'etc/init.d/limiquantix-agent'), 'utf8');
      expect(service).toBe(readFileSync(join(PACKAGING, 'files/limiquantix-agent.openrc'), 'utf8'));
      expect(service.startsWith('#!/sbin/openrc-run\n')).toBe(true);
      expect(syntaxError(service)).toBeNull();
      expect(statSync(join(g.root, 'etc/init.d/limiquantix-agent')).mode & 0o777).toBe(0o755);
      expect(readlinkSync(join(g.root, 'etc/runlevels/default/limiquantix-agent'))).toBe(
        '/etc/init.d/limiquantix-agent',
      );
      expect(readFileSync(join(g.root, 'usr/bin/limiquantix-agentctl'), 'utf8')).toBe(
        readFileSync(join(PACKAGING, 'files/agentctl.sh'), 'utf8'),
      );
      expect(existsSync(join(g.root, 'etc/limiquantix/pre-freeze.d'))).toBe(true);
      // A self-update restarts through OpenRC, by the service's own name.
      const config = JSON.parse(readFileSync(join(g.root, 'etc/limiquantix/agent.json'), 'utf8'));
      expect(config.update).toEqual({
        restart_command: ['/sbin/rc-service', 'limiquantix-agent', 'restart'],
        watchdog_launcher: [],
      });
      ok(join(out, 'limiquantix-agent-linux-amd64'), [
        '--check-config',
        '--config',
        join(g.root, 'etc/limiquantix/agent.json'),
      ]);
    });

    it('should install the glibc executable with the packages own unit and rule on another systemd root', async () => {
      const g = guest({ family: 'systemd' });
      const r = await g.run([], { LQ_AGENT_BASE_URL: base, LQ_INSTALL_ROOT: g.root });
      expect(r.status).toBe(0);
      expect(sha256(join(g.root, 'usr/bin/limiquantix-agent'))).toBe(
        sha256(join(out, 'limiquantix-agent-linux-amd64')),
      );
      expect(readFileSync(join(g.root, `etc/systemd/system/${UNIT}`), 'utf8')).toBe(
        readFileSync(join(PACKAGING, `files/${UNIT}`), 'utf8'),
      );
      expect(
        readFileSync(join(g.root, 'etc/udev/rules.d/99-limiquantix-agent.rules'), 'utf8'),
      ).toBe(readFileSync(join(PACKAGING, 'files/99-limiquantix-agent.rules'), 'utf8'));
      const config = JSON.parse(readFileSync(join(g.root, 'etc/limiquantix/agent.json'), 'utf8'));
      expect(config.update).toEqual({
        restart_command: ['/bin/systemctl', 'restart', 'limiquantix-agent'],
        watchdog_launcher: [
          '/usr/bin/systemd-run',
          '--collect',
          '--quiet',
          '--unit=limiquantix-agent-update-watchdog',
          '--',
        ],
      });
    });
  });

  describe('cloud-init/install-agent.yaml', () => {
    it('should be #cloud-config whose runcmd downloads install-agent.sh to a file and runs it', () => {
      const text = readFileSync(join(PACKAGING, 'cloud-init/install-agent.yaml'), 'utf8');
      expect(text.split('\n')[0]).toBe('#cloud-config');
      expect(text).toMatch(/^runcmd:$/m);
      // The block scalar under `- |`: the shell the guest runs.
      const block = /^(\s*)- \|\n((?:\1 {2}.*\n|\n)+)/m.exec(text);
      expect(block).not.toBeNull();
      const shell = block![2]!.replace(new RegExp(`^${block![1]}  `, 'gm'), '');
      expect(syntaxError(shell)).toBeNull();
      expect(shell).toMatch(/curl -fsSL .*-o (\S+) "\$base\/install-agent\.sh"/);
      expect(shell).toMatch(/base=\S+\/downloads\/agent\/latest/);
      expect(shell).toMatch(/LQ_AGENT_BASE_URL="\$base" sh /);
      expect(shell).not.toMatch(/\| *(ba)?sh/);
    });
  });
});
