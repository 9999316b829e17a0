import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { ErrorCode } from '@lq/proto';
import { PathPolicy, WINDOWS_PATH_RULES } from '../../files/path-policy.js';
import {
  checkWindowsPath,
  isAbsoluteWindowsPath,
  isInsideWindowsRoot,
} from '../../os/windows-paths.js';

const refused = (path: string, why: RegExp, allowUnc = false) =>
  expect(() => checkWindowsPath(path, { allowUnc })).toThrow(
    expect.objectContaining({
      code: ErrorCode.PATH_NOT_ALLOWED,
      message: expect.stringMatching(why),
    }),
  );

describe('Windows path rules', () => {
  it.each([
    'C:\\',
    'c:\\Users\\alice\\file.txt',
    'D:\\data\\a b\\résumé.docx',
    'C:\\ProgramData\\LimiQuantix\\agent.json',
  ])('should accept %s', (path) => {
    expect(checkWindowsPath(path)).toBe(path);
  });

  it.each([
    ['', /non-empty/],
    ['relative\\path', /absolute/],
    ['C:', /drive alone/],
    ['C:relative', /absolute/],
    ['\\Windows', /absolute/],
    ['C:/Windows', /separator/],
    ['C:\\Windows\\..\\secret', /normalised/],
    ['C:\\Windows\\.\\System32', /normalised/],
    ['C:\\Windows\\', /trailing/],
    ['C:\\a\\\\b', /empty segment/],
    ['C:\\file.txt:stream', /character/],
    ['C:\\a?b', /character/],
    ['C:\\dir.\\x', /dot or space/],
    ['C:\\name ', /dot or space/],
    ['C:\\Users\\CON', /device CON/],
    ['C:\\tmp\\nul.txt', /device NUL/],
    ['C:\\tmp\\com1', /device COM1/],
    ['\\\\?\\C:\\Windows', /verbatim prefix/],
    ['\\\\.\\PhysicalDrive0', /device or verbatim/],
    ['\\\\server\\share\\x', /UNC/],
    ['C:\\a\0b', /NUL/],
  ])('should refuse %j', (path, why) => refused(path, why));

  it('should take a UNC path only when allowed, and then a whole one', () => {
    expect(checkWindowsPath('\\\\fs01\\public\\a.txt', { allowUnc: true })).toBe(
      '\\\\fs01\\public\\a.txt',
    );
    refused('\\\\fs01', /server and a share/, true);
    refused('\\\\fs01\\public\\..\\x', /normalised/, true);
  });

  it('should compare roots case-insensitively and by whole segments', () => {
    expect(isInsideWindowsRoot('c:\\users\\alice', 'C:\\Users')).toBe(true);
    expect(isInsideWindowsRoot('C:\\Users', 'C:\\Users')).toBe(true);
    expect(isInsideWindowsRoot('C:\\UsersX\\a', 'C:\\Users')).toBe(false);
    expect(isInsideWindowsRoot('C:\\anything', 'C:\\')).toBe(true);
    expect(isInsideWindowsRoot('D:\\x', 'C:\\')).toBe(false);
  });

  it('should tell absolute Windows paths for config values', () => {
    expect(isAbsoluteWindowsPath('C:\\Windows\\System32\\cmd.exe')).toBe(true);
    expect(isAbsoluteWindowsPath('\\\\srv\\share')).toBe(true);
    expect(isAbsoluteWindowsPath('cmd.exe')).toBe(false);
    expect(isAbsoluteWindowsPath('/bin/sh')).toBe(false);
  });

  it('should make a path policy with Windows rules refuse outside its roots before the filesystem', () => {
    const policy = new PathPolicy(['C:\\Users', 'd:'], [], WINDOWS_PATH_RULES(false));
    expect(() => policy.checkRequested('c:\\users\\alice\\a.txt')).not.toThrow();
    expect(() => policy.checkRequested('D:\\data')).not.toThrow();
    expect(() => policy.checkRequested('C:\\Windows\\win.ini')).toThrow(
      /outside the allowed roots/,
    );
    expect(() => policy.checkRequested('C:\\Users\\..\\Windows')).toThrow(/normalised/);
  });

  it('should keep the Linux policy unchanged by default', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lq-winpath-'));
    try {
      const policy = new PathPolicy([dir]);
      expect(() => policy.checkRequested(`${dir}/a`)).not.toThrow();
      expect(() => policy.checkRequested('C:\\Users')).toThrow(/absolute/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
