import { describe, expect, it } from '@jest/globals';
import { UsageError } from '../errors.js';
import { localPath, planCopy } from './cp.command.js';

describe('planCopy', () => {
  it('should upload when the destination is VM:/path and download when the source is', () => {
    expect(planCopy('./a.bin', 'vm-1:/tmp/a.bin')).toEqual({
      direction: 'upload',
      local: './a.bin',
      vm: 'vm-1',
      path: '/tmp/a.bin',
    });
    expect(planCopy('vm-2:/etc/hosts', '.')).toEqual({
      direction: 'download',
      vm: 'vm-2',
      path: '/etc/hosts',
      local: '.',
    });
  });

  it('should append the file name to a guest directory ending in /', () => {
    expect(planCopy('dir/report.csv', 'vm-1:/tmp/')).toMatchObject({ path: '/tmp/report.csv' });
    expect(planCopy('-', 'vm-1:/tmp/')).toMatchObject({ path: '/tmp/' });
  });

  it('should refuse two local or two remote sides', () => {
    expect(() => planCopy('a', 'b')).toThrow(UsageError);
    expect(() => planCopy('vm-1:/a', 'vm-2:/b')).toThrow(/not between two VMs/);
  });
});

describe('localPath', () => {
  it('should resolve against the directory npm run lqctl was started in', () => {
    const npm = { npm_lifecycle_event: 'lqctl', INIT_CWD: '/home/u/work' };
    expect(localPath('a.bin', npm)).toBe('/home/u/work/a.bin');
    expect(localPath('/abs/a.bin', npm)).toBe('/abs/a.bin');
    expect(localPath('-', npm)).toBe('-');
    expect(localPath('a.bin', { INIT_CWD: '/elsewhere' })).toBe(`${process.cwd()}/a.bin`);
  });
});
