import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { create } from '@bufbuild/protobuf';
import {
  capabilitiesOf,
  ErrorCode,
  ExecuteRequestSchema,
  FileDeleteRequestSchema,
  FileMkdirRequestSchema,
  FileRenameRequestSchema,
  FileWriteRequestSchema,
  SetUserPasswordRequestSchema,
  ShutdownMode,
  ShutdownRequestSchema,
} from '@lq/proto';
import { defaultConfig, enabledOperations, parseConfig, type AgentConfig } from '../config.js';
import { FileLimitPolicies } from '../files/file-limits.js';
import { WINDOWS_RESTRICTED_WRITES } from '../files/path-policy.js';
import { UploadStore } from '../files/upload-store.js';
import { FileDeleteHandler } from '../handlers/file-delete.handler.js';
import { FileMkdirHandler } from '../handlers/file-mkdir.handler.js';
import { FileRenameHandler } from '../handlers/file-rename.handler.js';
import { FileWriteHandler } from '../handlers/file-write.handler.js';
import { UserResolver } from '../exec/user-resolver.js';
import type { HandlerContext } from '../handlers/handler.js';
import { ShutdownHandler } from '../handlers/shutdown.handler.js';
import { UnsupportedHandler } from '../handlers/unsupported.handler.js';
import { Logger } from '../logger.js';
import { currentPlatform } from './current-platform.js';
import { linuxPlatform } from './linux.platform.js';
import { LINUX_DEFAULTS, WINDOWS_DEFAULTS } from './platform-defaults.js';
import { WINDOWS_UNSUPPORTED, windowsPlatform } from './windows.platform.js';
import { WindowsProcessRunner } from './windows/windows-process-runner.js';

const ctx = (): HandlerContext & { after: (() => void)[] } => {
  const after: (() => void)[] = [];
  return {
    messageId: 'm1',
    log: new Logger('silent'),
    afterReply: (fn) => after.push(fn),
    emit: () => undefined,
    after,
  };
};

describe('the platform seam', () => {
  it('should choose Linux on this machine and keep the shared defaults as they are', () => {
    expect(currentPlatform).toBe(linuxPlatform);
    expect(LINUX_DEFAULTS.apply(defaultConfig())).toEqual(defaultConfig());
    expect(linuxPlatform.defaultDevicePath).toBe('/dev/virtio-ports/org.limiquantix.agent.0');
    expect(linuxPlatform.unsupported()).toEqual({});
  });

  it('should give Linux shutdown modes the configured commands', () => {
    const c = defaultConfig();
    expect(linuxPlatform.shutdownArgv(c, ShutdownMode.POWEROFF)).toBe(c.commands.poweroff);
    expect(linuxPlatform.shutdownArgv(c, ShutdownMode.REBOOT)).toBe(c.commands.reboot);
    expect(linuxPlatform.shutdownArgv(c, ShutdownMode.HALT)).toBe(c.commands.halt);
  });

  it('should give Windows its paths, programs and state under ProgramData', () => {
    const c = WINDOWS_DEFAULTS.apply(defaultConfig());
    expect(WINDOWS_DEFAULTS.configPath).toBe('C:\\ProgramData\\LimiQuantix\\agent.json');
    expect(WINDOWS_DEFAULTS.devicePath).toBe('\\\\.\\Global\\org.limiquantix.agent.0');
    expect(c.exec.shell).toBe('C:\\Windows\\System32\\cmd.exe');
    expect(c.files.roots).toEqual(['C:\\']);
    expect(c.update.state_dir).toBe('C:\\ProgramData\\LimiQuantix');
    expect(c.commands.reboot.slice(0, 2)).toEqual(['C:\\Windows\\System32\\shutdown.exe', '/r']);
  });

  it('should validate the windows settings on any OS, naming a bad one', () => {
    expect(() => parseConfig({ windows: { net: 'net.exe' } }, 'test.json')).toThrow(
      'test.json: windows.net must be an absolute Windows path',
    );
    expect(() => parseConfig({ windows: { allow_unc_paths: 'yes' } }, 'test.json')).toThrow(
      'windows.allow_unc_paths must be true or false',
    );
    expect(
      parseConfig({ windows: { powershell: 'D:\\pwsh\\pwsh.exe' } }, 'test.json').windows
        .powershell,
    ).toBe('D:\\pwsh\\pwsh.exe');
  });

  it('should run the handler through the platform it is given, not the OS it runs on', async () => {
    const calls: ShutdownMode[] = [];
    const handler = new ShutdownHandler(defaultConfig(), {
      shutdownArgv: (_c, mode) => {
        calls.push(mode);
        return ['/bin/true'];
      },
    });
    const c = ctx();
    await handler.handle(create(ShutdownRequestSchema, { mode: ShutdownMode.REBOOT }), c);
    expect(calls).toEqual([ShutdownMode.REBOOT]);
  });

  it('should refuse halt on Windows with UNSUPPORTED before scheduling anything', () => {
    const handler = new ShutdownHandler(WINDOWS_DEFAULTS.apply(defaultConfig()), windowsPlatform);
    const c = ctx();
    // The handler throws before it returns a promise, as for every invalid shutdown request.
    expect(() =>
      handler.handle(create(ShutdownRequestSchema, { mode: ShutdownMode.HALT }), c),
    ).toThrow(expect.objectContaining({ code: ErrorCode.UNSUPPORTED }));
    expect(c.after).toEqual([]);
  });

  it('should answer UNSUPPORTED with the API a refused Windows operation needs', async () => {
    expect(WINDOWS_UNSUPPORTED.quiesce).toMatch(/VSS_BT_COPY/);
    expect(WINDOWS_UNSUPPORTED.quiesce).toMatch(/IVssBackupComponents/);
    expect(Object.keys(windowsPlatform.unsupported())).toEqual(
      expect.arrayContaining(['quiesce', 'thaw', 'networkConfigure', 'agentUpdate']),
    );
    // Files are served on Windows now (files/windows-write-target.ts).
    for (const served of ['fileWrite', 'fileMkdir', 'fileDelete', 'fileRename', 'fileRead']) {
      expect(Object.keys(windowsPlatform.unsupported())).not.toContain(served);
    }
    await expect(
      new UnsupportedHandler('quiesce', WINDOWS_UNSUPPORTED.quiesce).handle(),
    ).rejects.toMatchObject({ code: ErrorCode.UNSUPPORTED, message: WINDOWS_UNSUPPORTED.quiesce });
  });

  it('should announce no capability an operation Windows refuses carries, and the file writes', () => {
    const c = WINDOWS_DEFAULTS.apply(defaultConfig());
    const unserved = Object.keys(windowsPlatform.unsupported());
    const caps = capabilitiesOf(enabledOperations(c), unserved);
    expect(caps).toEqual(
      expect.arrayContaining([
        'file.read',
        'file.write',
        'file.mkdir',
        'file.delete',
        'file.rename',
        'file.stat',
        'file.list',
        'file.handles',
        'execute',
      ]),
    );
    for (const refused of ['quiesce', 'network', 'fs.info', 'agent.update']) {
      expect(caps).not.toContain(refused);
    }
    // Linux refuses nothing: its capabilities are what the policy enables.
    expect(Object.keys(linuxPlatform.unsupported())).toEqual([]);
  });

  it('should refuse every file change by a caller with run-as limits on Windows, before the disk', async () => {
    const c = WINDOWS_DEFAULTS.apply(defaultConfig());
    c.files.roots = ['C:\\data'];
    const paths = windowsPlatform.pathPolicy(c);
    const limits = new FileLimitPolicies(undefined, paths);
    const restricted = { roots: [], noSetid: true };
    const uploads = new UploadStore(c.files, undefined, paths);
    const refusals = [
      new FileWriteHandler(c, uploads, paths, limits).handle(
        create(FileWriteRequestSchema, { path: 'C:\\data\\x', create: true, limits: restricted }),
      ),
      new FileMkdirHandler(paths, limits).handle(
        create(FileMkdirRequestSchema, { path: 'C:\\data\\d', limits: restricted }),
      ),
      new FileDeleteHandler(paths, limits).handle(
        create(FileDeleteRequestSchema, { path: 'C:\\data\\x', limits: restricted }),
      ),
      new FileRenameHandler(paths, limits).handle(
        create(FileRenameRequestSchema, {
          from: 'C:\\data\\x',
          to: 'C:\\data\\y',
          limits: restricted,
        }),
      ),
    ];
    for (const refusal of refusals) {
      await expect(refusal).rejects.toMatchObject({
        code: ErrorCode.UNSUPPORTED,
        message: WINDOWS_RESTRICTED_WRITES,
      });
    }
    // uid/gid name Unix owners, which Windows files do not have.
    await expect(
      new FileWriteHandler(c, uploads, paths, limits).handle(
        create(FileWriteRequestSchema, { path: 'C:\\data\\x', create: true, uid: 1000 }),
      ),
    ).rejects.toMatchObject({ code: ErrorCode.UNSUPPORTED });
    await uploads.closeAll();
  });

  it('should still say what the OS is when PowerShell cannot be run', async () => {
    const c = WINDOWS_DEFAULTS.apply(defaultConfig());
    c.windows.powershell = 'C:\\nowhere\\powershell.exe';
    const info = await windowsPlatform.osInfo(c)();
    expect(info).toMatchObject({ id: 'windows', name: 'Windows' });
    expect(info.kernelRelease).not.toBe('');
  });

  it('should refuse crypt hashes and limited callers for Windows passwords, before net.exe', async () => {
    const c = WINDOWS_DEFAULTS.apply(defaultConfig());
    c.windows.net = 'C:\\nowhere\\net.exe';
    const accounts = windowsPlatform.accounts(c, new UserResolver(c));
    await expect(
      accounts.setPassword(
        create(SetUserPasswordRequestSchema, {
          username: 'alice',
          secret: { case: 'cryptedHash', value: '$6$s$h' },
        }),
      ),
    ).rejects.toMatchObject({ code: ErrorCode.UNSUPPORTED });
    await expect(
      accounts.setPassword(
        create(SetUserPasswordRequestSchema, {
          username: 'alice',
          secret: { case: 'password', value: 'pw' },
          limits: { rules: [{ nonRoot: true }] },
        }),
      ),
    ).rejects.toMatchObject({ code: ErrorCode.UNSUPPORTED });
    await expect(
      accounts.setPassword(
        create(SetUserPasswordRequestSchema, {
          username: 'bad/name',
          secret: { case: 'password', value: 'pw' },
        }),
      ),
    ).rejects.toMatchObject({ code: ErrorCode.INVALID_REQUEST });
  });
});

// The Windows runner's own logic, run here with POSIX programs standing in for the guest's:
// spawn's windowsVerbatimArguments means nothing on Linux, so the child gets the quoted rest of
// the command line as one argument — which shows exactly what CreateProcess would be given.
describe('WindowsProcessRunner (POSIX stand-ins)', () => {
  let dir: string;
  let config: AgentConfig;
  let log: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'lq-winrun-'));
    log = join(dir, 'taskkill.log');
    const taskkill = join(dir, 'taskkill');
    // Records its arguments and kills the pid it was given, as taskkill /PID n /T /F would.
    writeFileSync(taskkill, `#!/bin/sh\necho "$@" >> '${log}'\nkill -9 "$2"\n`);
    chmodSync(taskkill, 0o755);
    config = defaultConfig();
    config.windows.default_cwd = dir;
    config.windows.taskkill = taskkill;
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('should hand the program the command line quoted by the MSVCRT rules', async () => {
    const runner = new WindowsProcessRunner(config);
    const r = await runner.run(
      create(ExecuteRequestSchema, { argv: ['/bin/echo', 'a b', 'c"d', 'plain'] }),
    );
    expect(r.exitCode).toBe(0);
    expect(Buffer.from(r.stdout).toString()).toBe('"a b" "c\\"d" plain\n');
  });

  it('should set Path from exec.path and let a request variable replace it whatever its case', async () => {
    const runner = new WindowsProcessRunner(config);
    const env = async (vars: Record<string, string>) =>
      Buffer.from(
        (await runner.run(create(ExecuteRequestSchema, { argv: ['/usr/bin/env'], env: vars })))
          .stdout,
      )
        .toString()
        .split('\n')
        .filter((line) => /^path=/i.test(line));
    expect(await env({})).toEqual([`Path=${config.exec.path}`]);
    expect(await env({ PATH: '/opt/bin' })).toEqual(['PATH=/opt/bin']);
  });

  it('should refuse run-as with UNSUPPORTED before starting anything', async () => {
    const runner = new WindowsProcessRunner(config);
    await expect(
      runner.run(create(ExecuteRequestSchema, { argv: ['/bin/true'], runAsUser: 'alice' })),
    ).rejects.toMatchObject({ code: ErrorCode.UNSUPPORTED });
    expect(runner.activeCount).toBe(0);
  });

  it('should kill the tree through taskkill /PID n /T /F when the timeout passes', async () => {
    const runner = new WindowsProcessRunner(config);
    const r = await runner.run(
      create(ExecuteRequestSchema, { argv: ['/bin/sleep', '30'], timeoutMs: 300 }),
    );
    expect(r.timedOut).toBe(true);
    expect(readFileSync(log, 'utf8')).toContain(`/PID ${r.pid} /T /F`);
  });

  it('should cancel a running execution by id through the same tree kill', async () => {
    const runner = new WindowsProcessRunner(config);
    const running = runner.run(create(ExecuteRequestSchema, { argv: ['/bin/sleep', '30'] }), {
      executionId: 'e1',
    });
    while (!runner.cancel('e1')) {
      await new Promise((r) => setTimeout(r, 10));
    }
    const r = await running;
    expect(r.cancelled).toBe(true);
    expect(runner.cancel('e1')).toBe(false);
  });

  it('should say which cwd is unusable', async () => {
    const runner = new WindowsProcessRunner(config);
    await expect(
      runner.run(create(ExecuteRequestSchema, { argv: ['/bin/true'], cwd: join(dir, 'missing') })),
    ).rejects.toMatchObject({
      code: ErrorCode.EXEC_FAILED,
      message: expect.stringContaining('missing'),
    });
  });
});
