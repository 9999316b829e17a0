// The guest agent's packages (deploy/packaging) as a guest gets them: built from the bundles,
// inspected with each format's own tools, the .deb installed into a scratch root with its
// maintainer scripts running against that root, the installed agent answering the installed
// agentctl; and install-agent.sh on a stubbed apt system.
import { spawn, spawnSync, type SpawnSyncOptions } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
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
const BUNDLES = ['limiquantix-agent.cjs', 'agentctl.cjs'].map((b) =>
  join(REPO_ROOT, 'dist/guest-agent', b),
);
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
    timeout: 20_000,
    env: { ...process.env, PATH },
    ...options,
  });
  if (r.error) {
    throw r.error;
  }
  return { status: r.status, stdout: String(r.stdout), stderr: String(r.stderr) };
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

describe('guest agent packages', () => {
  let work: string;
  let deb: string;
  let rpm: string;
  let rpmBuildError: Error | null = null;
  let root: string;
  let installOutput: string;

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

  const requireRpm = (): string => {
    if (rpmBuildError) {
      throw rpmBuildError;
    }
    return rpm;
  };

  beforeAll(() => {
    if (!BUNDLES.every((b) => existsSync(b))) {
      ok(process.execPath, ['scripts/build.mjs'], { cwd: REPO_ROOT });
    }
    work = mkdtempSync(join(tmpdir(), 'lq-packaging-'));
    const out = join(work, 'packages');
    const build = (format: string) =>
      ok(process.execPath, [join(PACKAGING, 'build-packages.mjs'), format, '--out', out], {
        cwd: REPO_ROOT,
      });
    build('deb');
    deb = join(out, `limiquantix-agent_${VERSION}_all.deb`);
    rpm = join(out, `limiquantix-agent-${VERSION}-1.noarch.rpm`);
    // CI installs rpmbuild (Debian's `rpm` package): its absence fails the rpm tests, it does
    // not skip them. The deb tests still run and say what they found.
    try {
      build('rpm');
    } catch (err) {
      rpmBuildError = err as Error;
    }

    root = join(work, 'root');
    mkdirSync(join(root, 'var/lib/dpkg/updates'), { recursive: true });
    mkdirSync(join(root, 'var/lib/dpkg/info'));
    writeFileSync(join(root, 'var/lib/dpkg/status'), '');
    const installed = dpkg('-i', deb);
    if (installed.status !== 0) {
      throw new Error(`dpkg -i failed:\n${installed.stdout}${installed.stderr}`);
    }
    installOutput = installed.stdout + installed.stderr;
  });

  afterAll(() => {
    if (work) {
      rmSync(work, { recursive: true, force: true });
    }
  });

  describe('.deb', () => {
    it('should declare its name, version, architecture, nodejs dependency, maintainer and description when built', () => {
      const fields = ok('dpkg-deb', ['-f', deb]);
      const field = (name: string) => new RegExp(`^${name}: (.*)$`, 'm').exec(fields)?.[1];
      expect(field('Package')).toBe('limiquantix-agent');
      expect(field('Version')).toBe(VERSION);
      expect(field('Architecture')).toBe('all');
      expect(field('Depends')).toMatch(/(^|, )nodejs \(>= 18\)(,|$)/);
      expect(field('Maintainer')).toMatch(/^\S.* <[^@\s]+@[^@\s]+>$/);
      expect(field('Description')).toMatch(/guest agent/i);
      expect(fields).toMatch(/^Description: .*\n (\S.*\n )+/m);
    });

    it('should hold the bundles, launchers, config, hook folders, unit and udev rule, all root-owned, when listed', () => {
      const entries = debListing(deb);
      expect(Object.fromEntries(entries)).toMatchObject({
        '/usr/lib/limiquantix-agent/limiquantix-agent.cjs': '-rw-r--r-- root/root',
        '/usr/lib/limiquantix-agent/agentctl.cjs': '-rw-r--r-- root/root',
        '/usr/bin/limiquantix-agent': '-rwxr-xr-x root/root',
        '/usr/bin/limiquantix-agentctl': '-rwxr-xr-x root/root',
        '/etc/limiquantix/agent.json': '-rw-r--r-- root/root',
        '/etc/limiquantix/pre-freeze.d': 'drwxr-xr-x root/root',
        '/etc/limiquantix/pre-freeze.d/README': '-rw-r--r-- root/root',
        '/etc/limiquantix/post-thaw.d': 'drwxr-xr-x root/root',
        '/etc/limiquantix/post-thaw.d/README': '-rw-r--r-- root/root',
        [`/lib/systemd/system/${UNIT}`]: '-rw-r--r-- root/root',
        '/lib/udev/rules.d/99-limiquantix-agent.rules': '-rw-r--r-- root/root',
      });
      for (const [path, mode] of entries) {
        expect({ path, owner: mode.split(' ')[1] }).toEqual({ path, owner: 'root/root' });
        if (mode.startsWith('d')) {
          expect({ path, mode }).toEqual({ path, mode: 'drwxr-xr-x root/root' });
        }
      }
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
        'usr/lib/limiquantix-agent/limiquantix-agent.cjs',
        'usr/lib/limiquantix-agent/agentctl.cjs',
        'etc/limiquantix/agent.json',
        'etc/limiquantix/pre-freeze.d/README',
        'etc/limiquantix/post-thaw.d/README',
        `lib/systemd/system/${UNIT}`,
        'lib/udev/rules.d/99-limiquantix-agent.rules',
      ]) {
        expect({ path, file: existsSync(join(root, path)) }).toEqual({ path, file: true });
      }
      for (const launcher of ['usr/bin/limiquantix-agent', 'usr/bin/limiquantix-agentctl']) {
        expect(statSync(join(root, launcher)).mode & 0o777).toBe(0o755);
      }
      expect(
        ok('dpkg-query', [
          `--admindir=${root}/var/lib/dpkg`,
          '-W',
          '-f',
          '${Status} ${Version}',
          'limiquantix-agent',
        ]),
      ).toBe(`install ok installed ${VERSION}`);
      // md5sums agree with what was installed.
      expect(dpkg('--verify', 'limiquantix-agent')).toMatchObject({ status: 0, stdout: '' });

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
      expect(config).toEqual(defaults);
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

    it('should answer a ping from the installed agentctl when the installed launcher serves a socket', async () => {
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
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      let stderr = '';
      agent.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise((resolve) => agent.once('exit', resolve));
      try {
        const deadline = Date.now() + 10_000;
        while (!existsSync(socket)) {
          if (agent.exitCode !== null || Date.now() > deadline) {
            throw new Error(`the installed agent did not listen on ${socket}:\n${stderr}`);
          }
          await new Promise((r) => setTimeout(r, 20));
        }
        const pong = run(join(root, 'usr/bin/limiquantix-agentctl'), ['--socket', socket, 'ping']);
        expect(pong.stderr).toBe('');
        expect(pong.status).toBe(0);
        expect(pong.stdout).toMatch(/^pong from agent \d+\.\d+\.\d+/);
      } finally {
        agent.kill('SIGTERM');
        await exited;
      }
    });

    it('should say which Node.js it needs and exit 127 when the launcher finds no usable one', () => {
      const launcher = join(root, 'usr/bin/limiquantix-agent');
      const fake = join(work, 'node-16');
      writeFileSync(fake, '#!/bin/sh\necho v16.20.2\n');
      chmodSync(fake, 0o755);
      const old = run(launcher, ['--version'], { env: { PATH, LIMIQUANTIX_NODE: fake } });
      expect(old).toMatchObject({ status: 127, stdout: '' });
      expect(old.stderr).toMatch(/Node\.js v16\.20\.2; 18 or newer is needed/);
      const none = run(launcher, ['--version'], { env: { PATH: join(work, 'empty-path') } });
      expect(none.status).toBe(127);
      expect(none.stderr).toMatch(/Node\.js not found/);
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
      expect(dpkg('-r', 'limiquantix-agent').status).toBe(0);
      for (const gone of [
        `lib/systemd/system/${UNIT}`,
        'lib/udev/rules.d/99-limiquantix-agent.rules',
        'usr/bin/limiquantix-agent',
        'usr/lib/limiquantix-agent',
        `etc/systemd/system/${DEVICE_UNIT}.wants`,
      ]) {
        expect({ gone, exists: existsSync(join(root, gone)) }).toEqual({ gone, exists: false });
      }
      expect(existsSync(join(root, 'etc/limiquantix/agent.json'))).toBe(true);
      expect(dpkg('--purge', 'limiquantix-agent').status).toBe(0);
      expect(existsSync(join(root, 'etc/limiquantix'))).toBe(false);
    });
  });

  describe('.rpm', () => {
    it('should declare its name, version, release, noarch and licence when queried', () => {
      const info = ok('rpm', ['-qip', requireRpm()]);
      const field = (name: string) => new RegExp(`^${name}\\s*: (.*)$`, 'm').exec(info)?.[1];
      expect(field('Name')).toBe('limiquantix-agent');
      expect(field('Version')).toBe(VERSION);
      expect(field('Release')).toBe('1');
      expect(field('Architecture')).toBe('noarch');
      expect(field('License')).toBeTruthy();
      expect(field('Summary')).toMatch(/guest agent/i);
    });

    it('should require nodejs 18 or newer, with the epoch Fedora and RHEL give nodejs', () => {
      const requires = ok('rpm', ['-qpR', requireRpm()]).split('\n');
      expect(requires).toContain('nodejs >= 1:18');
    });

    it('should hold what the .deb holds, with the unit and rule under /usr/lib, and noreplace config', () => {
      const listed = ok('rpm', [
        '-qp',
        '--qf',
        '[%{FILEMODES:perms} %{FILEUSERNAME}/%{FILEGROUPNAME} %{FILENAMES}\n]',
        requireRpm(),
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
      expect(rpmFiles.map(([p]) => p)).toEqual(
        expect.arrayContaining([
          `/usr/lib/systemd/system/${UNIT}`,
          '/usr/lib/udev/rules.d/99-limiquantix-agent.rules',
        ]),
      );
      // It owns its own directories, and no system one.
      expect(rpmEntries.filter(([, mode]) => mode.startsWith('d')).sort()).toEqual([
        ['/etc/limiquantix', 'drwxr-xr-x root/root'],
        ['/etc/limiquantix/post-thaw.d', 'drwxr-xr-x root/root'],
        ['/etc/limiquantix/pre-freeze.d', 'drwxr-xr-x root/root'],
        ['/usr/lib/limiquantix-agent', 'drwxr-xr-x root/root'],
      ]);
      const flags = ok('rpm', [
        '-qp',
        '--qf',
        '[%{FILENAMES} %{FILEFLAGS:fflags}\n]',
        requireRpm(),
      ]);
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
      const scripts = ok('rpm', ['-qp', '--scripts', requireRpm()]);
      expect(scripts).toMatch(/^postinstall scriptlet \(using \/bin\/sh\):/m);
      expect(scripts).toMatch(/^preuninstall scriptlet \(using \/bin\/sh\):/m);
      expect(scripts).toMatch(/^postuninstall scriptlet \(using \/bin\/sh\):/m);
      const common = readFileSync(join(PACKAGING, 'maintainer-common.sh'), 'utf8').trimEnd();
      for (const tag of ['POSTIN', 'PREUN', 'POSTUN']) {
        const text = ok('rpm', ['-qp', '--qf', `%{${tag}}`, requireRpm()]);
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
          requireRpm(),
        ],
        { env: { PATH, HOME: work } },
      );
      expect(existsSync(join(rpmRoot, `usr/lib/systemd/system/${UNIT}`))).toBe(true);
      expect(lstatSync(join(rpmRoot, 'usr/bin/limiquantix-agent')).mode & 0o777).toBe(0o755);
      const version = ok(join(rpmRoot, 'usr/bin/limiquantix-agent'), ['--version']);
      expect(version).toMatch(/^\d+\.\d+\.\d+ \(protocol \d+\)/);
    });
  });

  describe('install-agent.sh', () => {
    const script = join(PACKAGING, 'install-agent.sh');

    /**
     * A guest with apt: PATH holds only the real tools the script uses and stubs of the package
     * tools, which log their calls. `nodejs` is what apt offers; `installed`, what dpkg knows.
     */
    function aptGuest(options: {
      uid?: number;
      node?: string;
      nodejs?: string;
      installed?: string;
    }) {
      const dir = mkdtempSync(join(work, 'guest-'));
      const bin = join(dir, 'bin');
      mkdirSync(bin);
      for (const tool of [
        'sh',
        'cat',
        'chmod',
        'mktemp',
        'rm',
        'tr',
        'sed',
        'sleep',
        'tar',
        'dpkg-deb',
      ]) {
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
      const node = (version: string) => `#!/bin/sh\necho v${version}\n`;
      stub('id', `echo ${options.uid ?? 0}`);
      stub('dpkg', 'exit 0');
      stub(
        'dpkg-query',
        `[ -f '${state}' ] || exit 1\nprintf 'install ok installed|%s' "$(cat '${state}')"`,
      );
      stub(
        'apt-cache',
        `printf 'nodejs:\\n  Installed: (none)\\n  Candidate: %s\\n' '${options.nodejs ?? '(none)'}'`,
      );
      // apt-get install brings nodejs along: a node that reports the version apt offered.
      const offered = options.nodejs?.replace(/^\d+:/, '').replace(/[^0-9.].*$/, '') ?? '18.0.0';
      writeFileSync(join(dir, 'node-after-install'), node(offered));
      stub(
        'apt-get',
        [
          'case " $* " in *" install "*)',
          `  printf '%s' '${VERSION}' > '${state}'`,
          `  cat '${join(dir, 'node-after-install')}' > '${bin}/node' && chmod 755 '${bin}/node'`,
          'esac',
        ].join('\n'),
      );
      if (options.node) {
        writeFileSync(join(bin, 'node'), node(options.node));
        chmodSync(join(bin, 'node'), 0o755);
      }
      const env = { PATH: bin, HOME: dir, TMPDIR: dir };
      return {
        run: (args: string[]) => run(join(bin, 'sh'), [script, ...args], { env, cwd: dir }),
        calls: () => (existsSync(log) ? readFileSync(log, 'utf8') : ''),
      };
    }

    it('should pass sh -n and describe its arguments when asked for --help', () => {
      expect(syntaxError(readFileSync(script, 'utf8'))).toBeNull();
      const help = run('sh', [script, '--help']);
      expect(help.status).toBe(0);
      for (const word of [
        'LQ_AGENT_PACKAGE',
        'LQ_AGENT_BASE_URL',
        'LQ_AGENT_VERSION',
        '.deb',
        '.rpm',
      ]) {
        expect(help.stdout).toContain(word);
      }
    });

    it('should install the package, nodejs coming with it, when the guest has no Node.js', () => {
      const guest = aptGuest({ nodejs: '18.19.0+dfsg-6~deb12u2' });
      const r = guest.run([deb]);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(r.stdout).toContain(`installed limiquantix-agent ${VERSION}`);
      expect(r.stdout).toContain(`${PORT} is not present`);
      expect(guest.calls()).toMatch(/^apt-get update -q$/m);
      expect(guest.calls()).toContain(
        `apt-get install -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold ${deb}`,
      );
    });

    it('should install nothing and say why when apt only offers a Node.js older than 18', () => {
      const guest = aptGuest({ nodejs: '12.22.9~dfsg-1ubuntu3' });
      const r = guest.run([deb]);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(
        /offer nodejs 12\.22\.9~dfsg-1ubuntu3\. The agent needs Node\.js 18 or newer/,
      );
      expect(guest.calls()).not.toContain('apt-get install');
    });

    it('should do nothing when the same version is already installed', () => {
      const guest = aptGuest({ node: '20.11.1', installed: VERSION });
      const r = guest.run([deb]);
      expect(r.status).toBe(0);
      expect(r.stdout).toContain(`limiquantix-agent ${VERSION} is already installed`);
      expect(guest.calls()).not.toContain('apt-get');
    });

    it('should refuse an .rpm on a guest that installs .deb packages, and a user who is not root', () => {
      const guest = aptGuest({ node: '20.11.1' });
      const wrong = guest.run([join(work, 'limiquantix-agent-0.1.0-1.noarch.rpm')]);
      expect(wrong.status).toBe(1);
      expect(wrong.stderr).toMatch(/is a \.rpm package, but this system installs \.deb packages/);
      const user = aptGuest({ uid: 1000 }).run([deb]);
      expect(user.status).toBe(1);
      expect(user.stderr).toMatch(/must run as root/);
      const missing = guest.run([join(work, 'nowhere.deb')]);
      expect(missing.status).toBe(1);
      expect(missing.stderr).toMatch(/no such file: .*nowhere\.deb/);
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
      expect(shell).toMatch(/LQ_AGENT_BASE_URL="\$base" LQ_AGENT_VERSION=\S+ sh /);
      expect(shell).not.toMatch(/\| *(ba)?sh/);
    });
  });
});
