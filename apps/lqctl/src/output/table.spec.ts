import { describe, expect, it } from '@jest/globals';
import { formatDetails, formatTable, truncate } from './table.js';

describe('formatTable', () => {
  it('should pad columns to the widest cell, right-align numbers and not pad the last column', () => {
    const out = formatTable(
      [{ header: 'ID' }, { header: 'CPU%', align: 'right' }, { header: 'OS' }],
      [
        ['vm-1', '3.5', 'Debian GNU/Linux 12'],
        ['vm-10', '100.0', 'Alpine'],
      ],
    );
    expect(out).toBe(
      ['ID      CPU%  OS', 'vm-1     3.5  Debian GNU/Linux 12', 'vm-10  100.0  Alpine', ''].join(
        '\n',
      ),
    );
  });

  it('should show missing values as - and keep each row on one line', () => {
    const out = formatTable(
      [{ header: 'A' }, { header: 'B' }],
      [
        [null, 'x\ny'],
        [undefined, ''],
      ],
    );
    expect(out).toBe('A  B\n-  x y\n-  -\n');
  });

  it('should cut cells over their column maximum with an ellipsis', () => {
    const out = formatTable(
      [{ header: 'CMD', max: 8 }, { header: 'X' }],
      [['sh -c echo hello', 1]],
    );
    expect(out).toBe('CMD       X\nsh -c e…  1\n');
    expect(truncate('héllo wörld', 5)).toBe('héll…');
    expect(truncate('short', 5)).toBe('short');
  });

  it('should print only the header for no rows', () => {
    expect(formatTable([{ header: 'ID' }, { header: 'STATE' }], [])).toBe('ID  STATE\n');
  });
});

describe('formatDetails', () => {
  it('should align values after the longest key', () => {
    expect(
      formatDetails([
        ['id', 'vm-1'],
        ['agent state', 'ready'],
        ['labels', null],
      ]),
    ).toBe('id:          vm-1\nagent state: ready\nlabels:      -\n');
  });
});
