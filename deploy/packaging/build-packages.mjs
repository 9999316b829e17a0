#!/usr/bin/env node
// Builds the guest agent's Debian and RPM packages (README.md beside this file) from the bundles
// of scripts/build.mjs: dist/packages/limiquantix-agent_<version>_all.deb with dpkg-deb and
// dist/packages/limiquantix-agent-<version>-1.noarch.rpm with rpmbuild. Plain Node.js, no
// dependencies; the version is the root package.json's.
//
//   node scripts/build.mjs && node deploy/packaging/build-packages.mjs [deb] [rpm] [--out DIR]
//
// It does not rebuild the bundles itself: tests that run in parallel spawn them, and a bundle
// rewritten under a running test would make it fail for no reason of its own.
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '../..');
const BUNDLE_DIR = join(ROOT, 'dist/guest-agent');

const NAME = 'limiquantix-agent';
const MAINTAINER = process.env.LQ_PACKAGE_MAINTAINER || 'LimiQuantix <packaging@limiquantix.io>';
const LICENSE = 'Proprietary';
const SUMMARY = 'LimiQuantix guest agent for KVM/QEMU virtual machines';
const DESCRIPTION = `The guest side of the LimiQuantix platform: run commands as any user, transfer
files, shut down cleanly, and report telemetry and IP addresses, for the
hypervisor host, over the virtio-serial port org.limiquantix.agent.0. systemd
starts it when the port appears. Needs Node.js 18 or newer.`;

const USAGE = `Usage: node deploy/packaging/build-packages.mjs [deb] [rpm] [--out DIR]

Builds ${NAME}_<version>_all.deb (dpkg-deb) and ${NAME}-<version>-1.noarch.rpm
(rpmbuild) from dist/guest-agent/*.cjs (node scripts/build.mjs) into DIR (default dist/packages).
Both formats unless one is named. LQ_PACKAGE_MAINTAINER sets the Maintainer/Packager field.
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

/** The agent's built-in defaults, as the bundle itself prints them: the config can never drift. */
function defaultConfigJson(bundle, work) {
  const empty = join(work, 'empty-agent.json');
  writeFileSync(empty, '{}\n');
  const printed = JSON.parse(
    run(process.execPath, [bundle, '--check-config', '--config', empty, '--log-level', 'silent']),
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

function stage(format, root, inputs) {
  const { unitDir, udevDir } = layout(format);
  const files = join(HERE, 'files');
  const launcher = readFileSync(join(files, 'launcher.sh.in'), 'utf8');
  const launch = (name, bundle, what) =>
    launcher.replaceAll('@NAME@', name).replaceAll('@BUNDLE@', bundle).replaceAll('@WHAT@', what);

  put(root, `usr/lib/${NAME}/limiquantix-agent.cjs`, { from: inputs.agent }, 0o644);
  put(root, `usr/lib/${NAME}/agentctl.cjs`, { from: inputs.agentctl }, 0o644);
  put(
    root,
    `usr/bin/${NAME}`,
    launch(NAME, 'limiquantix-agent.cjs', 'the LimiQuantix guest agent'),
    0o755,
  );
  put(
    root,
    `usr/bin/${NAME}ctl`,
    launch(`${NAME}ctl`, 'agentctl.cjs', "agentctl, a client of the agent's socket"),
    0o755,
  );
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
  put(root, `usr/share/doc/${NAME}/README.md`, { from: join(HERE, 'README.md') }, 0o644);
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

function buildDeb(version, root, outDir) {
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
      `Package: ${NAME}`,
      `Version: ${version}`,
      'Architecture: all',
      `Maintainer: ${MAINTAINER}`,
      `Installed-Size: ${installedKiB}`,
      'Depends: nodejs (>= 18)',
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
  const out = join(outDir, `${NAME}_${version}_all.deb`);
  // --root-owner-group: root:root in the archive without fakeroot; -Zxz: every dpkg reads it.
  run('dpkg-deb', ['--root-owner-group', '-Zxz', '--build', root, out]);
  return out;
}

function buildRpm(version, root, outDir, work) {
  const topdir = join(work, 'rpmbuild');
  const spec = readFileSync(join(HERE, 'rpm', `${NAME}.spec.in`), 'utf8')
    .replaceAll('@VERSION@', version)
    .replaceAll('@MAINTAINER@', MAINTAINER)
    .replaceAll('@LICENSE@', LICENSE)
    .replaceAll('@SUMMARY@', SUMMARY)
    .replaceAll('@DESCRIPTION@', DESCRIPTION)
    .replaceAll('@STAGE@', root);
  // rpm expands macros everywhere in a scriptlet, so a literal % must be doubled.
  const specFile = join(work, `${NAME}.spec`);
  writeFileSync(
    specFile,
    spec.replaceAll('#COMMON#', () => maintainerScript('#COMMON#').replaceAll('%', '%%')),
  );
  run('rpmbuild', [
    '-bb',
    '--quiet',
    '--define',
    `_topdir ${topdir}`,
    '--define',
    `_tmppath ${join(work, 'tmp')}`,
    specFile,
  ]);
  const name = `${NAME}-${version}-1.noarch.rpm`;
  const built = join(topdir, 'RPMS', 'noarch', name);
  if (!existsSync(built)) {
    fail(`rpmbuild did not produce ${built}`);
  }
  const out = join(outDir, name);
  copyFileSync(built, out);
  return out;
}

function main(argv) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { out: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const unknown = positionals.filter((p) => p !== 'deb' && p !== 'rpm');
  if (unknown.length > 0) {
    fail(`unknown format ${unknown.join(', ')}: deb, rpm, or both\n\n${USAGE}`);
  }
  const formats = positionals.length > 0 ? [...new Set(positionals)] : ['deb', 'rpm'];
  const outDir = resolve(values.out ?? join(ROOT, 'dist/packages'));
  // Before anything is built: a missing tool fails the run at once, not after the first format.
  if (formats.includes('deb')) {
    need('dpkg-deb', 'install dpkg (Debian, Ubuntu: it is there; elsewhere: the dpkg package)');
  }
  if (formats.includes('rpm')) {
    need('rpmbuild', 'install it: apt-get install rpm (Debian, Ubuntu) or dnf install rpm-build');
  }

  const inputs = {
    agent: join(BUNDLE_DIR, 'limiquantix-agent.cjs'),
    agentctl: join(BUNDLE_DIR, 'agentctl.cjs'),
  };
  for (const bundle of Object.values(inputs)) {
    if (!existsSync(bundle)) {
      fail(`${relative(ROOT, bundle)} is missing: run node scripts/build.mjs first`);
    }
  }
  const version = packageVersion();
  const agentVersion = run(process.execPath, [inputs.agent, '--version']).split(' ')[0]?.trim();
  if (agentVersion !== version) {
    process.stderr.write(
      `build-packages: warning: package.json says ${version}, the agent bundle says ${agentVersion}\n`,
    );
  }

  mkdirSync(outDir, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), 'lq-packages-'));
  try {
    inputs.config = defaultConfigJson(inputs.agent, work);
    for (const format of formats) {
      const root = join(work, `${format}-root`);
      stage(format, root, inputs);
      const out =
        format === 'deb' ? buildDeb(version, root, outDir) : buildRpm(version, root, outDir, work);
      const shown = relative(process.cwd(), out);
      process.stdout.write(`${shown.startsWith('..') ? out : shown}\n`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

try {
  main(process.argv.slice(2));
} catch (err) {
  if (err instanceof BuildError || err?.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    process.stderr.write(`build-packages: ${err.message}\n`);
    process.exit(2);
  }
  throw err;
}
