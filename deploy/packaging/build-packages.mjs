#!/usr/bin/env node
// Builds what a guest installs (README.md beside this file), from the executables of
// scripts/build-executables.mjs, into dist/packages/:
//   limiquantix-guest-agent_<v>_amd64.deb, _arm64.deb              dpkg-deb
//   limiquantix-guest-agent-<v>-1.x86_64.rpm, .aarch64.rpm         rpmbuild
//   limiquantix-agent-linux-amd64, -linux-arm64, -linux-amd64-musl the plain executables
//   limiquantix-agent-windows-amd64.exe, limiquantix-guest-agent-<v>-x64.msi   (win, when named;
//                                                                  wixl: windows/*.wxs.in)
//   install-agent.sh                                                picks and installs one of them
//   SHA256SUMS, release.json                                        checksums; version and commit
// Plain Node.js, no dependencies; the version is the root package.json's. No package depends on
// a JavaScript runtime: the executable carries its own.
//
//   node scripts/build.mjs && node scripts/build-executables.mjs &&
//   node deploy/packaging/build-packages.mjs [deb] [rpm] [bin] [win] [--arch A]... [--out DIR] [--fast]
//
// It does not rebuild the executables itself: tests that run in parallel spawn them, and a file
// rewritten under a running test would make it fail for no reason of its own.
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '../..');
const EXECUTABLES = join(ROOT, 'dist/agent');
const NODE_BUNDLE = join(ROOT, 'dist/guest-agent/limiquantix-agent.cjs');

/** The package's name; the program, its unit and its paths keep the agent's own name. */
const PACKAGE = 'limiquantix-guest-agent';
const NAME = 'limiquantix-agent';
/** What the Node.js packages before 0.2 were called: the new package replaces them. */
const OLD_PACKAGE = 'limiquantix-agent';
const MAINTAINER = process.env.LQ_PACKAGE_MAINTAINER || 'LimiQuantix <packaging@limiquantix.io>';
const LICENSE = 'Proprietary';
const SUMMARY = 'LimiQuantix guest agent for KVM/QEMU virtual machines';
const DESCRIPTION = `The guest side of the LimiQuantix platform: run commands as any user, transfer
files, shut down cleanly, and report telemetry and IP addresses, for the
hypervisor host, over the virtio-serial port org.limiquantix.agent.0. systemd
starts it when the port appears. One self-contained executable: no language
runtime to install first.`;

/** Our architecture names → each format's, and the executable a package carries. */
const ARCHES = {
  amd64: { deb: 'amd64', rpm: 'x86_64', executable: 'linux-amd64' },
  arm64: { deb: 'arm64', rpm: 'aarch64', executable: 'linux-arm64' },
};
/** Plain executables published beside the packages (Alpine and other distributions take these). */
const PLAIN = ['linux-amd64', 'linux-arm64', 'linux-amd64-musl'];
/** The Windows executable (npm run package, or `win` named) and what its MSI is called. */
const WINDOWS_TARGET = 'windows-amd64';
const WINDOWS_EXE = `${NAME}-${WINDOWS_TARGET}.exe`;
const msiName = (version) => `${PACKAGE}-${version}-x64.msi`;
/**
 * Windows Installer knows the product across versions by this code (MajorUpgrade replaces an
 * older version): never change it.
 */
export const MSI_UPGRADE_CODE = '4C1A7E52-93B8-4D0F-A6E3-2B5C8D9F1E07';

/** The oldest glibc the executables need (bun's runtime links against GLIBC_2.17 at most). */
const GLIBC_MIN = '2.17';

const USAGE = `Usage: node deploy/packaging/build-packages.mjs [deb] [rpm] [bin] [win] [--arch A]... [--out DIR] [--fast]
                                 [--executables DIR]

Builds into DIR (default dist/packages), from dist/agent/limiquantix-agent-<target>
(node scripts/build.mjs && node scripts/build-executables.mjs; --executables: from another
folder, as npm run package does):
  deb  ${PACKAGE}_<version>_<amd64|arm64>.deb
  rpm  ${PACKAGE}-<version>-1.<x86_64|aarch64>.rpm
  bin  ${NAME}-linux-amd64, -linux-arm64, -linux-amd64-musl
  win  ${WINDOWS_EXE} and ${PACKAGE}-<version>-x64.msi (wixl and msibuild from msitools;
       WinSW from the node-windows npm package); only when named (npm run package names it)
and always install-agent.sh, SHA256SUMS and release.json. Every Linux format and architecture unless
some are named (--arch amd64 or arm64; repeatable). --fast compresses the packages with xz
level 0 instead of 6 (tests: about 10 times faster, 5 MB larger). LQ_PACKAGE_MAINTAINER sets
the Maintainer/Packager field.
`;

class BuildError extends Error {}

/** The layout both formats share; systemd and udev files differ in directory only. */
function layout(format) {
  const lib = format === 'deb' ? 'lib' : 'usr/lib';
  return {
    unitDir: `${lib}/systemd/system`,
    udevDir: `${lib}/udev/rules.d`,
  };
}

const CONFFILES = [
  'etc/limiquantix/agent.json',
  'etc/limiquantix/pre-freeze.d/README',
  'etc/limiquantix/post-thaw.d/README',
];

function fail(message) {
  throw new BuildError(message);
}

function need(tool, hint) {
  const found = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' });
  if (found.status !== 0) {
    fail(`${tool} not found: ${hint}`);
  }
}

/** package.json's version as both formats accept it: a pre-release "-rc.1" becomes "~rc.1". */
function packageVersion() {
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const converted = String(version).replaceAll('-', '~');
  if (!/^[0-9][0-9A-Za-z.+~]*$/.test(converted)) {
    fail(`package.json version ${JSON.stringify(version)} cannot be a package version`);
  }
  return converted;
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { encoding: 'utf8', ...options });
  if (result.error) {
    fail(`${command}: ${result.error.message}`);
  }
  if (result.status !== 0) {
    fail(
      `${command} ${args.join(' ')} failed (${result.status}):\n${result.stdout}${result.stderr}`,
    );
  }
  return result.stdout;
}

/**
 * The agent's built-in defaults, as the agent itself prints them (the config can never drift),
 * with the self-update settings of the systemd unit the packages carry
 * (files/agent-update.systemd.json: restart through systemctl, the watchdog outside the unit's
 * cgroup through systemd-run). Asked of the Node bundle of the same source, which runs here
 * whatever the target.
 */
function defaultConfigJson() {
  const printed = JSON.parse(
    run(process.execPath, [
      NODE_BUNDLE,
      '--check-config',
      '--config',
      join(HERE, 'files/agent-update.systemd.json'),
      '--log-level',
      'silent',
    ]),
  );
  delete printed.source;
  return `${JSON.stringify(printed, null, 2)}\n`;
}

function put(root, path, content, mode) {
  const target = join(root, path);
  mkdirSync(dirname(target), { recursive: true, mode: 0o755 });
  if (typeof content === 'string') {
    writeFileSync(target, content);
  } else {
    copyFileSync(content.from, target);
  }
  chmodSync(target, mode);
}

function stage(format, root, inputs, executable) {
  const { unitDir, udevDir } = layout(format);
  const files = join(HERE, 'files');
  put(root, `usr/bin/${NAME}`, { from: executable }, 0o755);
  put(root, `usr/bin/${NAME}ctl`, { from: join(files, 'agentctl.sh') }, 0o755);
  put(root, 'etc/limiquantix/agent.json', inputs.config, 0o644);
  put(
    root,
    'etc/limiquantix/pre-freeze.d/README',
    { from: join(files, 'pre-freeze.d.README') },
    0o644,
  );
  put(
    root,
    'etc/limiquantix/post-thaw.d/README',
    { from: join(files, 'post-thaw.d.README') },
    0o644,
  );
  put(root, `${unitDir}/${NAME}.service`, { from: join(files, `${NAME}.service`) }, 0o644);
  put(root, `${udevDir}/99-${NAME}.rules`, { from: join(files, `99-${NAME}.rules`) }, 0o644);
  put(root, `usr/share/doc/${PACKAGE}/README.md`, { from: join(HERE, 'README.md') }, 0o644);
  // Directory modes go into the archive and onto the guest (the root too, as "./"): never let
  // the build machine's umask or mkdtemp's 0700 decide them.
  for (const dir of [root, ...walk(root)].filter((p) => statSync(p).isDirectory())) {
    chmodSync(dir, 0o755);
  }
}

function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? [path, ...walk(path)] : [path];
  });
}

/** A maintainer script with maintainer-common.sh in place of #COMMON#. */
function maintainerScript(text) {
  const common = readFileSync(join(HERE, 'maintainer-common.sh'), 'utf8').trimEnd();
  if (!text.includes('#COMMON#')) {
    fail('maintainer script without #COMMON#');
  }
  return text.replaceAll('#COMMON#', () => common);
}

function buildDeb(version, arch, root, outDir, level) {
  const control = join(root, 'DEBIAN');
  mkdirSync(control, { mode: 0o755 });
  const paths = walk(root).filter((p) => !p.startsWith(control));
  // Installed-Size in KiB, as dpkg-gencontrol counts it: each file rounded up, each directory 1.
  const installedKiB = paths.reduce((sum, p) => {
    const st = statSync(p);
    return sum + (st.isDirectory() ? 1 : Math.ceil(st.size / 1024));
  }, 0);
  const description = DESCRIPTION.split('\n')
    .map((line) => ` ${line || '.'}`)
    .join('\n');
  writeFileSync(
    join(control, 'control'),
    [
      `Package: ${PACKAGE}`,
      `Version: ${version}`,
      `Architecture: ${ARCHES[arch].deb}`,
      `Maintainer: ${MAINTAINER}`,
      `Installed-Size: ${installedKiB}`,
      `Depends: libc6 (>= ${GLIBC_MIN})`,
      // The Node.js package of earlier releases: same files, same unit; this one takes over.
      `Conflicts: ${OLD_PACKAGE}`,
      `Replaces: ${OLD_PACKAGE}`,
      `Provides: ${OLD_PACKAGE}`,
      'Section: admin',
      'Priority: optional',
      `Description: ${SUMMARY}`,
      description,
      '',
    ].join('\n'),
  );
  writeFileSync(join(control, 'conffiles'), CONFFILES.map((c) => `/${c}\n`).join(''));
  const md5sums = paths
    .filter((p) => statSync(p).isFile() && !CONFFILES.includes(relative(root, p)))
    .map(
      (p) => `${createHash('md5').update(readFileSync(p)).digest('hex')}  ${relative(root, p)}\n`,
    )
    .join('');
  writeFileSync(join(control, 'md5sums'), md5sums);
  for (const script of ['postinst', 'prerm', 'postrm']) {
    const text = maintainerScript(readFileSync(join(HERE, 'debian', script), 'utf8'));
    writeFileSync(join(control, script), text, { mode: 0o755 });
    chmodSync(join(control, script), 0o755);
  }
  const out = join(outDir, `${PACKAGE}_${version}_${ARCHES[arch].deb}.deb`);
  // --root-owner-group: root:root in the archive without fakeroot; xz: every dpkg reads it.
  run('dpkg-deb', ['--root-owner-group', '-Zxz', `-z${level}`, '--build', root, out]);
  return out;
}

function buildRpm(version, arch, root, outDir, work, level) {
  const topdir = join(work, `rpmbuild-${arch}`);
  const rpmArch = ARCHES[arch].rpm;
  const spec = readFileSync(join(HERE, 'rpm', `${PACKAGE}.spec.in`), 'utf8')
    .replaceAll('@VERSION@', version)
    .replaceAll('@ARCH@', rpmArch)
    .replaceAll('@COMPRESSION@', `w${level}.xzdio`)
    .replaceAll('@MAINTAINER@', MAINTAINER)
    .replaceAll('@LICENSE@', LICENSE)
    .replaceAll('@SUMMARY@', SUMMARY)
    .replaceAll('@DESCRIPTION@', DESCRIPTION)
    .replaceAll('@OLD_PACKAGE@', OLD_PACKAGE)
    .replaceAll('@STAGE@', root);
  // rpm expands macros everywhere in a scriptlet, so a literal % must be doubled.
  const specFile = join(work, `${PACKAGE}-${arch}.spec`);
  writeFileSync(
    specFile,
    spec.replaceAll('#COMMON#', () => maintainerScript('#COMMON#').replaceAll('%', '%%')),
  );
  run('rpmbuild', [
    '-bb',
    '--quiet',
    '--target',
    `${rpmArch}-linux`,
    '--define',
    `_topdir ${topdir}`,
    '--define',
    `_tmppath ${join(work, 'tmp')}`,
    specFile,
  ]);
  const name = `${PACKAGE}-${version}-1.${rpmArch}.rpm`;
  const built = join(topdir, 'RPMS', rpmArch, name);
  if (!existsSync(built)) {
    fail(`rpmbuild did not produce ${built}`);
  }
  const out = join(outDir, name);
  copyFileSync(built, out);
  return out;
}

/** A copy made beside `to` and renamed over it: a reader never sees half a file. */
function publish(from, to, mode) {
  const tmp = `${to}.tmp-${process.pid}`;
  copyFileSync(from, tmp);
  chmodSync(tmp, mode);
  renameSync(tmp, to);
  return to;
}

function sha256(path) {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/**
 * install-agent.sh with the unit, the udev rule and the OpenRC script in place of its markers:
 * installing the plain executable writes the very files the packages carry.
 */
function renderInstaller(version) {
  const files = join(HERE, 'files');
  const text = readFileSync(join(HERE, 'install-agent.sh.in'), 'utf8');
  const inserts = {
    '@VERSION@': version,
    '#UNIT#': readFileSync(join(files, `${NAME}.service`), 'utf8').trimEnd(),
    '#UDEV_RULE#': readFileSync(join(files, `99-${NAME}.rules`), 'utf8').trimEnd(),
    '#OPENRC#': readFileSync(join(files, `${NAME}.openrc`), 'utf8').trimEnd(),
    '#AGENTCTL#': readFileSync(join(files, 'agentctl.sh'), 'utf8').trimEnd(),
    '#UPDATE_SYSTEMD#': readFileSync(join(files, 'agent-update.systemd.json'), 'utf8').trimEnd(),
    '#UPDATE_OPENRC#': readFileSync(join(files, 'agent-update.openrc.json'), 'utf8').trimEnd(),
  };
  let out = text;
  for (const [marker, value] of Object.entries(inserts)) {
    if (!out.includes(marker)) {
      fail(`install-agent.sh.in has no ${marker}`);
    }
    out = out.replaceAll(marker, () => value);
  }
  return out;
}

/** The executable of a target, checked to be one that names the target it was built for. */
function executableOf(target, dir) {
  const path = join(dir, `${NAME}-${target}`);
  if (!existsSync(path)) {
    fail(
      `${relative(ROOT, path)} is missing: run node scripts/build.mjs && node scripts/build-executables.mjs`,
    );
  }
  return path;
}

/** The Windows executable, checked to be a PE file (what bun builds for bun-windows-x64). */
function windowsExecutableOf(dir) {
  const path = join(dir, WINDOWS_EXE);
  if (!existsSync(path)) {
    fail(
      `${relative(ROOT, path)} is missing: run node scripts/build.mjs && node scripts/build-executables.mjs --target ${WINDOWS_TARGET}`,
    );
  }
  const head = Buffer.alloc(2);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, head, 0, 2, 0);
  } finally {
    closeSync(fd);
  }
  if (head.toString('latin1') !== 'MZ') {
    fail(`${path} is not a Windows executable`);
  }
  return path;
}

/** WinSW as the node-windows npm package ships it (a devDependency). */
function winswFiles() {
  const require = createRequire(join(ROOT, 'package.json'));
  let dir;
  try {
    dir = join(dirname(require.resolve('node-windows/package.json')), 'bin/winsw');
  } catch {
    fail('the npm package node-windows (WinSW, the service wrapper) is missing: run npm ci');
  }
  const exe = join(dir, 'winsw.exe');
  const config = join(dir, 'winsw.exe.config');
  if (!existsSync(exe) || !existsSync(config)) {
    fail(`${dir} holds no winsw.exe and winsw.exe.config`);
  }
  return { exe, config };
}

/**
 * "0.2.0~rc.1" → "0.2.0": Windows Installer versions are three numbers (major, minor ≤ 255,
 * build ≤ 65535) and compare numerically, so a pre-release carries its release's number.
 */
export function msiVersion(version) {
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(version);
  if (!m || Number(m[1]) > 255 || Number(m[2]) > 255 || Number(m[3]) > 65535) {
    fail(`version ${version} cannot be a Windows Installer version (a.b.c, a,b ≤ 255, c ≤ 65535)`);
  }
  return `${Number(m[1])}.${Number(m[2])}.${Number(m[3])}`;
}

/**
 * The MSI: wixl compiles windows/limiquantix-guest-agent.wxs.in (the agent and WinSW under
 * Program Files\LimiQuantix\Guest Agent, agent.example.json under ProgramData\LimiQuantix, the
 * service "limiquantix-agent" started at boot), then msibuild adds what wixl cannot express: the
 * service's restart-on-failure actions (MsiServiceConfigFailureActions, Windows Installer 5.0)
 * and the MsiConfigureServices action that applies them.
 */
function buildMsi(version, commit, exe, outDir, work) {
  const win = join(HERE, 'windows');
  const stageDir = join(work, 'msi');
  mkdirSync(stageDir, { recursive: true });
  const winsw = winswFiles();
  const xmlEscape = (text) =>
    text.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]);
  // wixl takes sources relative to the .wxs only: each is linked beside it under a plain name.
  const sources = {
    '@AGENT_EXE@': ['limiquantix-agent.exe', exe],
    '@WINSW_EXE@': ['winsw.exe', winsw.exe],
    '@WINSW_EXE_CONFIG@': ['winsw.exe.config', winsw.config],
    '@SERVICE_XML@': ['limiquantix-agent-service.xml', join(win, 'limiquantix-agent-service.xml')],
    '@CONFIG_EXAMPLE@': ['agent.example.json', join(win, 'agent.example.json')],
    '@WINDOWS_MD@': ['WINDOWS.md', join(ROOT, 'apps/guest-agent/WINDOWS.md')],
  };
  for (const [name, from] of Object.values(sources)) {
    symlinkSync(from, join(stageDir, name));
  }
  const inserts = {
    '@VERSION@': version,
    '@MSI_VERSION@': msiVersion(version),
    '@COMMIT@': commit,
    '@UPGRADE_CODE@': MSI_UPGRADE_CODE,
    ...Object.fromEntries(Object.entries(sources).map(([marker, [name]]) => [marker, name])),
  };
  let wxs = readFileSync(join(win, `${PACKAGE}.wxs.in`), 'utf8');
  for (const [marker, value] of Object.entries(inserts)) {
    if (!wxs.includes(marker)) {
      fail(`${PACKAGE}.wxs.in has no ${marker}`);
    }
    wxs = wxs.replaceAll(marker, () => xmlEscape(value));
  }
  const wxsFile = join(stageDir, `${PACKAGE}.wxs`);
  writeFileSync(wxsFile, wxs);
  const msi = join(stageDir, msiName(version));
  const built = spawnSync('wixl', ['-a', 'x64', '-o', msi, wxsFile], {
    cwd: stageDir,
    encoding: 'utf8',
  });
  // wixl warns on stderr about attributes it ignores and still succeeds; only the status counts.
  if (built.status !== 0 || !existsSync(msi)) {
    fail(`wixl failed (${built.status ?? built.error?.message}):\n${built.stdout}${built.stderr}`);
  }
  run('msibuild', [
    msi,
    '-q',
    'CREATE TABLE `MsiServiceConfigFailureActions` (`MsiServiceConfigFailureActions` CHAR(72) NOT NULL, `Name` CHAR(255) NOT NULL LOCALIZABLE, `Event` SHORT NOT NULL, `ResetPeriod` LONG, `RebootMessage` CHAR(255) LOCALIZABLE, `Command` CHAR(255) LOCALIZABLE, `Actions` CHAR(255), `DelayActions` CHAR(255), `Component_` CHAR(72) NOT NULL PRIMARY KEY `MsiServiceConfigFailureActions`)',
    '-q',
    // Event 1: on install. Actions 1 = SC_ACTION_RESTART, after 5 s, 30 s, 60 s; the count
    // starts again after an hour without a failure.
    "INSERT INTO `MsiServiceConfigFailureActions` (`MsiServiceConfigFailureActions`, `Name`, `Event`, `ResetPeriod`, `Actions`, `DelayActions`, `Component_`) VALUES ('AgentServiceRestart', 'limiquantix-agent', 1, 3600, '1[~]1[~]1', '5000[~]30000[~]60000', 'AgentService')",
    '-q',
    "INSERT INTO `InstallExecuteSequence` (`Action`, `Condition`, `Sequence`) VALUES ('MsiConfigureServices', 'VersionMsi >= \"5.00\"', 5850)",
  ]);
  return publish(msi, join(outDir, msiName(version)), 0o644);
}

function main(argv) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      out: { type: 'string' },
      executables: { type: 'string' },
      arch: { type: 'string', multiple: true },
      fast: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const unknown = positionals.filter((p) => !['deb', 'rpm', 'bin', 'win'].includes(p));
  if (unknown.length > 0) {
    fail(`unknown format ${unknown.join(', ')}: deb, rpm, bin, win, or all\n\n${USAGE}`);
  }
  const formats = positionals.length > 0 ? [...new Set(positionals)] : ['deb', 'rpm', 'bin'];
  const linuxFormats = formats.filter((f) => f !== 'win');
  const arches = values.arch ? [...new Set(values.arch)] : Object.keys(ARCHES);
  const badArch = arches.filter((a) => !ARCHES[a]);
  if (badArch.length > 0) {
    fail(`unknown --arch ${badArch.join(', ')}: ${Object.keys(ARCHES).join(' or ')}`);
  }
  const level = values.fast ? 0 : 6;
  const outDir = resolve(values.out ?? join(ROOT, 'dist/packages'));
  // Before anything is built: a missing tool fails the run at once, not after the first format.
  if (formats.includes('deb')) {
    need('dpkg-deb', 'install dpkg (Debian, Ubuntu: it is there; elsewhere: the dpkg package)');
  }
  if (formats.includes('rpm')) {
    need('rpmbuild', 'install it: apt-get install rpm (Debian, Ubuntu) or dnf install rpm-build');
  }
  if (formats.includes('win')) {
    need('wixl', 'install it: apt-get install wixl msitools (Debian, Ubuntu)');
    need('msibuild', 'install it: apt-get install msitools (Debian, Ubuntu)');
  }
  if (!existsSync(NODE_BUNDLE)) {
    fail(`${relative(ROOT, NODE_BUNDLE)} is missing: run node scripts/build.mjs first`);
  }
  const version = packageVersion();
  const targets =
    linuxFormats.length === 0
      ? []
      : formats.includes('bin')
        ? PLAIN.filter((t) => arches.some((a) => t.startsWith(ARCHES[a].executable)))
        : arches.map((a) => ARCHES[a].executable);
  const executablesDir = resolve(values.executables ?? EXECUTABLES);
  const executables = Object.fromEntries(targets.map((t) => [t, executableOf(t, executablesDir)]));
  const windowsExe = formats.includes('win') ? windowsExecutableOf(executablesDir) : undefined;
  // The commit and version the executables carry: one runs here whatever this machine is.
  const native =
    executables['linux-amd64'] && process.arch === 'x64' ? executables['linux-amd64'] : null;
  const printed = native
    ? run(native, ['--version'])
    : run(process.execPath, [NODE_BUNDLE, '--version']);
  const [agentVersion] = printed.split(' ');
  const commit = /commit (\S+)/.exec(printed)?.[1] ?? 'unknown';
  if (agentVersion?.trim() !== version) {
    process.stderr.write(
      `build-packages: warning: package.json says ${version}, the agent says ${agentVersion}\n`,
    );
  }

  mkdirSync(outDir, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), 'lq-packages-'));
  const say = (out) => {
    const shown = relative(process.cwd(), out);
    process.stdout.write(`${shown.startsWith('..') ? out : shown}\n`);
  };
  try {
    const inputs = { config: defaultConfigJson() };
    for (const arch of linuxFormats.length === 0 ? [] : arches) {
      for (const format of linuxFormats.filter((f) => f !== 'bin')) {
        const root = join(work, `${format}-${arch}-root`);
        stage(format, root, inputs, executables[ARCHES[arch].executable]);
        say(
          format === 'deb'
            ? buildDeb(version, arch, root, outDir, level)
            : buildRpm(version, arch, root, outDir, work, level),
        );
        rmSync(root, { recursive: true, force: true });
      }
    }
    if (formats.includes('bin')) {
      for (const target of targets) {
        say(publish(executables[target], join(outDir, `${NAME}-${target}`), 0o755));
      }
    }
    if (windowsExe) {
      say(publish(windowsExe, join(outDir, WINDOWS_EXE), 0o755));
      say(buildMsi(version, commit, windowsExe, outDir, work));
    }
    writeFileSync(join(work, 'install-agent.sh'), renderInstaller(version));
    say(publish(join(work, 'install-agent.sh'), join(outDir, 'install-agent.sh'), 0o755));

    // Checksums of every artifact of this version in outDir (those of earlier runs too, so
    // building one format after another still lists all), for install-agent.sh and for users.
    const ours = (f) =>
      f === 'install-agent.sh' ||
      f === WINDOWS_EXE ||
      f === msiName(version) ||
      PLAIN.some((t) => f === `${NAME}-${t}`) ||
      f.startsWith(`${PACKAGE}_${version}_`) ||
      f.startsWith(`${PACKAGE}-${version}-1.`);
    const listed = readdirSync(outDir)
      .filter((f) => ours(f) && !f.includes('.tmp-'))
      .sort();
    writeFileSync(
      join(work, 'SHA256SUMS'),
      listed.map((f) => `${sha256(join(outDir, f))}  ${f}\n`).join(''),
    );
    say(publish(join(work, 'SHA256SUMS'), join(outDir, 'SHA256SUMS'), 0o644));
    // What the control plane's /downloads/agent/<version>/ serves this folder as.
    writeFileSync(
      join(work, 'release.json'),
      `${JSON.stringify({ name: PACKAGE, version, commit, files: listed }, null, 2)}\n`,
    );
    say(publish(join(work, 'release.json'), join(outDir, 'release.json'), 0o644));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

try {
  main(process.argv.slice(2));
} catch (err) {
  if (err instanceof BuildError || err?.code?.startsWith?.('ERR_PARSE_ARGS')) {
    process.stderr.write(`build-packages: ${err.message}\n`);
    process.exit(2);
  }
  throw err;
}
