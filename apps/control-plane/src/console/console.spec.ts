import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { ConsoleFiles, isApiPath, looksLikeFile } from './console-files.js';

describe('console files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lq-console-files-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('should find dist/console above the module, or LQ_CONSOLE_DIR, only once built', () => {
    const deep = join(dir, 'dist/tsc/apps/control-plane/src/console');
    mkdirSync(deep, { recursive: true });
    const files = new ConsoleFiles(undefined, deep);
    expect(files.dir()).toBeUndefined();
    mkdirSync(join(dir, 'dist/console/assets'), { recursive: true });
    writeFileSync(join(dir, 'dist/console/index.html'), '<div id="root"></div>');
    writeFileSync(join(dir, 'dist/console/assets/app.js'), '');
    expect(files.dir()).toBe(join(dir, 'dist/console'));
    expect(new ConsoleFiles(join(dir, 'dist/console'), '/').dir()).toBe(join(dir, 'dist/console'));
    expect(new ConsoleFiles(join(dir, 'missing'), deep).dir()).toBeUndefined();
  });

  it('should resolve files inside the directory only', () => {
    const root = join(dir, 'dist/console');
    expect(ConsoleFiles.fileOf(root, '/assets/app.js')).toBe(join(root, 'assets/app.js'));
    expect(ConsoleFiles.fileOf(root, '/assets/../../console/index.html')).toBe(
      join(root, 'index.html'),
    );
    for (const bad of [
      '/../tsc',
      '/%2e%2e/%2e%2e/etc/passwd',
      '/assets',
      '/x%00.js',
      '/%E0%A4%A',
    ]) {
      expect([bad, ConsoleFiles.fileOf(root, bad)]).toEqual([bad, undefined]);
    }
  });

  it('should keep API and operations paths away from the console', () => {
    expect(
      ['/api', '/api/vms', '/health', '/metrics', '/limiquantix.compute.v1.VMService/X'].map(
        isApiPath,
      ),
    ).toEqual([true, true, true, true, true]);
    expect(['/', '/vms/vm-1', '/audit', '/apis', '/healthy'].map(isApiPath)).toEqual([
      false,
      false,
      false,
      false,
      false,
    ]);
    expect([
      looksLikeFile('/assets/a.js'),
      looksLikeFile('/vms/vm-1'),
      looksLikeFile('/vms/vm.1'),
    ]).toEqual([true, false, true]);
  });
});
