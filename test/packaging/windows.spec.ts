// The Windows release as far as this Linux machine can check it (issue 22): the agent compiled
// for windows-amd64 (bun cross-compiles it), the MSI wixl builds from it, inspected with
// msitools' msiinfo and msiextract — its tables, the files it installs where, the service it
// registers (auto start, restart on failure) and its upgrade code — and the executable run under
// Debian's Wine: --version and --check-config, which shows the Windows platform's defaults.
//
// Debian 12's Wine (8.0) has no bcryptprimitives.dll, whose ProcessPrng every Bun (and Rust)
// Windows executable imports; Windows 10 and later have it. The test gives Wine a forwarder DLL
// that exports ProcessPrng as advapi32's SystemFunction036 (RtlGenRandom: the same two arguments,
// random bytes out), made with the MinGW binutils from test/packaging/wine/. A missing tool skips
// its part, saying which, unless LQ_CROSS_REQUIRED=1 (.ci/run installs them) makes it a failure.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ErrorCode, FileType } from '@lq/proto';
// @ts-expect-error -- an .mjs build script without types
import * as buildExecutables from '../../scripts/build-executables.mjs';

const { bunBinary } = buildExecutables as { bunBinary(): string };

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PKG = 'limiquantix-guest-agent';
const VERSION = String(
  (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string })
    .version,
).replaceAll('-', '~');
const MSI = `${PKG}-${VERSION}-x64.msi`;
const EXE = 'limiquantix-agent-windows-amd64.exe';
const UPGRADE_CODE = '{4C1A7E52-93B8-4D0F-A6E3-2B5C8D9F1E07}';
const REQUIRED = process.env.LQ_CROSS_REQUIRED === '1';
const CACHE = process.env.LQ_CACHE_DIR || join(REPO_ROOT, '.cache');

function has(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
}

function ok(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
) {
  const r = spawnSync(command, args, {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    timeout: 600_000,
    ...options,
  });
  if (r.status !== 0) {
    throw new Error(
      `${command} ${args.join(' ')} failed (${r.status ?? r.error?.message}):\n${r.stdout}${r.stderr}`,
    );
  }
  return r.stdout;
}

/** A table as msiinfo exports it: the rows after the three header lines, split on tabs. */
function table(msi: string, name: string): string[][] {
  return ok('msiinfo', ['export', msi, name])
    .split(/\r?\n/)
    .slice(3)
    .filter((line) => line !== '')
    .map((line) => line.split('\t'));
}

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

/** Skips (printing why) or, under LQ_CROSS_REQUIRED=1, fails when a tool is missing. */
function missing(tools: string[], npmPackages: string[] = []): string | undefined {
  const require = createRequire(join(REPO_ROOT, 'package.json'));
  const absent = [
    ...tools.filter((t) => !has(t)),
    ...npmPackages.filter((p) => {
      try {
        require.resolve(`${p}/package.json`);
        return false;
      } catch {
        return true;
      }
    }),
  ];
  if (absent.length === 0) {
    return undefined;
  }
  const reason = `${absent.join(', ')} not installed (apt-get install msitools wixl wine64 binutils-mingw-w64-x86-64; npm ci for node-windows)`;
  if (REQUIRED) {
    throw new Error(`LQ_CROSS_REQUIRED=1 but ${reason}`);
  }
  process.stderr.write(`windows.spec.ts: skipped: ${reason}\n`);
  return reason;
}

const msiSkip = missing(['wixl', 'msibuild', 'msiinfo', 'msiextract'], ['node-windows']);
const wineSkip = missing([
  'wine',
  'x86_64-w64-mingw32-as',
  'x86_64-w64-mingw32-dlltool',
  'x86_64-w64-mingw32-ld',
]);

let work: string;
let out: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'lq-windows-'));
  out = join(work, 'packages');
  if (msiSkip && wineSkip) {
    return;
  }
  // The bundles come from the global set-up; the Windows executable is compiled here only
  // (cached in .cache like the Linux ones), not for every test run.
  ok(process.execPath, ['scripts/build-executables.mjs', '--target', 'windows-amd64'], {
    cwd: REPO_ROOT,
  });
  if (!msiSkip) {
    ok(process.execPath, ['deploy/packaging/build-packages.mjs', 'win', '--out', out], {
      cwd: REPO_ROOT,
    });
  }
}, 900_000);

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

const describeMsi = msiSkip ? describe.skip : describe;
const describeWine = wineSkip ? describe.skip : describe;

describeMsi('the Windows release (build-packages.mjs win)', () => {
  it('should publish the .exe and the .msi with checksums, as the control plane serves them', () => {
    const sums = readFileSync(join(out, 'SHA256SUMS'), 'utf8');
    for (const name of [EXE, MSI]) {
      expect(sums).toContain(`${sha256(join(out, name))}  ${name}\n`);
    }
    const release = JSON.parse(readFileSync(join(out, 'release.json'), 'utf8')) as {
      files: string[];
    };
    expect(release.files).toEqual(expect.arrayContaining([EXE, MSI]));
    expect(readFileSync(join(out, EXE)).subarray(0, 2).toString('latin1')).toBe('MZ');
  });

  it('should hold the tables of an MSI that installs files and a service', () => {
    const tables = ok('msiinfo', ['tables', join(out, MSI)]).split(/\r?\n/);
    expect(tables).toEqual(
      expect.arrayContaining([
        'File',
        'Component',
        'Directory',
        'Feature',
        'ServiceInstall',
        'ServiceControl',
        'MsiServiceConfigFailureActions',
        'Upgrade',
        'Property',
        'InstallExecuteSequence',
      ]),
    );
    expect(ok('msiinfo', ['suminfo', join(out, MSI)])).toMatch(/Template: x64;1033/);
  });

  it('should carry the fixed upgrade code and the release version', () => {
    const props = new Map(table(join(out, MSI), 'Property').map(([k, v]) => [k, v]));
    expect(props.get('UpgradeCode')).toBe(UPGRADE_CODE);
    expect(props.get('ProductVersion')).toBe(/^\d+\.\d+\.\d+/.exec(VERSION)![0]);
    expect(props.get('ProductName')).toBe('LimiQuantix Guest Agent');
    // MajorUpgrade: an older version is replaced, a newer one refuses the downgrade.
    const upgrade = table(join(out, MSI), 'Upgrade');
    expect(upgrade.every((row) => row[0] === UPGRADE_CODE)).toBe(true);
    expect(upgrade.map((row) => row.at(-1))).toEqual(
      expect.arrayContaining(['WIX_UPGRADE_DETECTED', 'WIX_DOWNGRADE_DETECTED']),
    );
  });

  it('should install the agent and WinSW under Program Files and the config example under ProgramData', () => {
    const msi = join(out, MSI);
    const dirs = new Map(
      table(msi, 'Directory').map(([id, parent, name]) => [id, { parent, name }]),
    );
    const pathOf = (id: string): string => {
      const d = dirs.get(id);
      if (!d || !d.parent) {
        return id;
      }
      // A standard folder (ProgramFiles64Folder…) is named by its id; its DefaultDir is ".".
      return `${pathOf(d.parent)}\\${d.name === '.' ? id : d.name!.split('|').pop()}`;
    };
    const components = new Map(table(msi, 'Component').map(([id, , dir]) => [id, dir!]));
    const files = table(msi, 'File').map(([, component, name]) => [
      name!.split('|').pop(),
      pathOf(components.get(component)!),
    ]);
    expect(files.sort()).toEqual(
      [
        ['WINDOWS.md', 'TARGETDIR\\ProgramFiles64Folder\\LimiQuantix\\Guest Agent'],
        ['agent.example.json', 'TARGETDIR\\CommonAppDataFolder\\LimiQuantix'],
        [
          'limiquantix-agent-service.exe',
          'TARGETDIR\\ProgramFiles64Folder\\LimiQuantix\\Guest Agent',
        ],
        [
          'limiquantix-agent-service.exe.config',
          'TARGETDIR\\ProgramFiles64Folder\\LimiQuantix\\Guest Agent',
        ],
        [
          'limiquantix-agent-service.xml',
          'TARGETDIR\\ProgramFiles64Folder\\LimiQuantix\\Guest Agent',
        ],
        ['limiquantix-agent.exe', 'TARGETDIR\\ProgramFiles64Folder\\LimiQuantix\\Guest Agent'],
      ].sort(),
    );
    // 64-bit components (msidbComponentAttributes64bit).
    for (const [, , , attributes] of table(msi, 'Component')) {
      expect(Number(attributes) & 256).toBe(256);
    }
  });

  it('should embed the very executable that was built, and WinSW configured to run it', () => {
    const extracted = join(work, 'extracted');
    mkdirSync(extracted);
    ok('msiextract', ['-C', extracted, join(out, MSI)]);
    // msiextract lays files out under their directories' names, standard folders left out.
    const agent = join(extracted, 'LimiQuantix/Guest Agent/limiquantix-agent.exe');
    expect(sha256(agent)).toBe(sha256(join(out, EXE)));
    const xml = readFileSync(
      join(extracted, 'LimiQuantix/Guest Agent/limiquantix-agent-service.xml'),
      'utf8',
    );
    expect(xml).toContain('<id>limiquantix-agent</id>');
    expect(xml).toContain('<executable>%BASE%\\limiquantix-agent.exe</executable>');
    expect(xml).toMatch(/<onfailure action="restart"/);
    const example = JSON.parse(
      readFileSync(join(extracted, 'LimiQuantix/agent.example.json'), 'utf8'),
    ) as { files: { roots: string[] } };
    expect(example.files.roots).toEqual(['C:\\']);
  });

  it('should register a service that starts at boot as LocalSystem and restarts on failure', () => {
    const msi = join(out, MSI);
    const [service] = table(msi, 'ServiceInstall');
    // Name, DisplayName, ServiceType 16 (own process), StartType 2 (auto), ErrorControl 1.
    expect(service!.slice(1, 6)).toEqual([
      'limiquantix-agent',
      'LimiQuantix Guest Agent',
      '16',
      '2',
      '1',
    ]);
    expect(service![8]).toBe('LocalSystem');
    // The service's component is the one whose key file is WinSW.
    const keyOf = new Map(table(msi, 'Component').map(([id, , , , , key]) => [id, key]));
    expect(keyOf.get(service!.at(-2))).toBe('ServiceExe');
    const [control] = table(msi, 'ServiceControl');
    // 163 = start on install (1) + stop on install (2) and uninstall (32) + delete on uninstall (128).
    expect(control!.slice(1, 3)).toEqual(['limiquantix-agent', '163']);
    const [failure] = table(msi, 'MsiServiceConfigFailureActions');
    expect(failure).toEqual([
      'AgentServiceRestart',
      'limiquantix-agent',
      '1',
      '3600',
      '',
      '',
      '1[~]1[~]1',
      '5000[~]30000[~]60000',
      'AgentService',
    ]);
    const sequence = table(msi, 'InstallExecuteSequence').map(([action]) => action);
    expect(sequence).toEqual(
      expect.arrayContaining(['InstallServices', 'MsiConfigureServices', 'StartServices']),
    );
  });
});

describeWine('the Windows executable under Wine', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(() => {
    dir = join(work, 'wine');
    mkdirSync(dir);
    copyFileSync(join(REPO_ROOT, 'dist/agent', EXE), join(dir, 'limiquantix-agent.exe'));
    // The ProcessPrng forwarder beside the executable (Windows loads DLLs from there first).
    const src = join(REPO_ROOT, 'test/packaging/wine');
    ok('x86_64-w64-mingw32-as', [join(src, 'dll-entry.s'), '-o', join(dir, 'entry.o')]);
    ok('x86_64-w64-mingw32-dlltool', [
      '-d',
      join(src, 'bcryptprimitives.def'),
      '-e',
      join(dir, 'exports.o'),
    ]);
    ok('x86_64-w64-mingw32-ld', [
      '--dll',
      '-e',
      'DllMain',
      '-o',
      join(dir, 'bcryptprimitives.dll'),
      join(dir, 'entry.o'),
      join(dir, 'exports.o'),
    ]);
    const prefix = join(CACHE, 'wine-prefix');
    mkdirSync(prefix, { recursive: true });
    env = { ...process.env, WINEPREFIX: prefix, WINEDEBUG: '-all', DISPLAY: '' };
  }, 120_000);

  function wine(args: string[]) {
    return spawnSync('wine', [join(dir, 'limiquantix-agent.exe'), ...args], {
      env,
      encoding: 'utf8',
      timeout: 300_000,
    });
  }

  it('should print its version and its target under Wine', () => {
    const r = wine(['--version']);
    expect({ status: r.status, stderr: r.status === 0 ? '' : r.stderr }).toEqual({
      status: 0,
      stderr: '',
    });
    expect(r.stdout).toMatch(/ \(protocol \d+\) commit \S+ target windows-amd64\n$/);
  }, 300_000);

  it('should check its config with the Windows platform defaults under Wine', () => {
    const r = wine(['--check-config']);
    expect(r.status).toBe(0);
    const config = JSON.parse(r.stdout) as {
      exec: { shell: string };
      files: { roots: string[] };
      commands: { poweroff: string[] };
      update: { state_dir: string };
    };
    expect(config.exec.shell).toBe('C:\\Windows\\System32\\cmd.exe');
    expect(config.files.roots).toEqual(['C:\\']);
    expect(config.commands.poweroff.slice(0, 4)).toEqual([
      'C:\\Windows\\System32\\shutdown.exe',
      '/s',
      '/t',
      '0',
    ]);
    expect(config.update.state_dir).toBe('C:\\ProgramData\\LimiQuantix');
  }, 300_000);

  it('should refuse a config whose path setting is not a Windows path, naming it', () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{"files":{"roots":["relative"]}}');
    const r = wine(['--check-config', '--config', `Z:${bad.replaceAll('/', '\\')}`]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('files.roots[0] must be an absolute path (got "relative")');
  }, 300_000);

  // The Windows file rules through Wine's Windows API (test/packaging/wine/file-ops.ts): the
  // platform's handlers compiled for windows-amd64, run on a root in this machine's /tmp
  // (Wine's Z:), with a link in it to a directory outside.
  it('should write, read, list, rename and delete under a root, and refuse what leaves it', () => {
    const exe = join(dir, 'file-ops.exe');
    ok(bunBinary(), [
      'build',
      '--compile',
      '--target=bun-windows-x64',
      join(REPO_ROOT, 'test/packaging/wine/file-ops.ts'),
      '--outfile',
      exe,
    ]);
    const root = mkdtempSync(join(tmpdir(), 'lq-wine-root-'));
    const outside = mkdtempSync(join(tmpdir(), 'lq-wine-out-'));
    try {
      writeFileSync(join(outside, 'secret.txt'), 'secret');
      symlinkSync(outside, join(root, 'esc'));
      const r = spawnSync('wine', [exe, `Z:${root.replaceAll('/', '\\')}`], {
        env,
        encoding: 'utf8',
        timeout: 300_000,
      });
      expect({ status: r.status, stderr: r.status === 0 ? '' : r.stderr }).toEqual({
        status: 0,
        stderr: '',
      });
      const steps = Object.fromEntries(
        r.stdout
          .trim()
          .split('\n')
          .map((line) => JSON.parse(line) as { step: string; ok?: never; error?: number })
          .map((s) => [s.step, s]),
      ) as Record<string, { ok?: Record<string, unknown>; error?: number; message?: string }>;
      const okSteps = ['mkdir', 'write', 'append', 'upload', 'commit', 'readX', 'readY'];
      for (const name of [...okSteps, 'stat', 'list', 'rename', 'delete']) {
        expect({ name, error: steps[name]?.message }).toEqual({ name, error: undefined });
      }
      expect(steps.commit!.ok).toMatchObject({ committed: true, size: 13 });
      expect(steps.readX!.ok).toMatchObject({ data: 'hello wine', eof: true });
      expect(steps.readY!.ok).toMatchObject({ data: 'atomic upload', totalSize: 13 });
      expect(steps.stat!.ok).toMatchObject({ type: FileType.REGULAR, size: 13 });
      expect(
        (steps.list!.ok as unknown as { entries: { name: string }[] }).entries.map((e) => e.name),
      ).toEqual(['x.txt', 'y.txt']);
      expect(steps.delete!.ok).toMatchObject({ removed: 4 });
      expect(steps.restricted).toMatchObject({ error: ErrorCode.UNSUPPORTED });
      for (const name of ['stream', 'device', 'readEscape', 'writeEscape', 'deleteEscape']) {
        expect({ name, error: steps[name]?.error }).toEqual({
          name,
          error: ErrorCode.PATH_NOT_ALLOWED,
        });
      }
      expect(steps.readEscape!.message).toContain('outside the allowed roots');
      expect(steps.deleteRoot).toMatchObject({ error: ErrorCode.PATH_NOT_ALLOWED });
      // Nothing left in the root but the link, nothing written or removed outside.
      expect(readdirSync(root)).toEqual(['esc']);
      expect(readdirSync(outside)).toEqual(['secret.txt']);
    } finally {
      rmSync(root, { recursive: true, force: true });
      rmSync(outside, { recursive: true, force: true });
    }
  }, 300_000);
});
