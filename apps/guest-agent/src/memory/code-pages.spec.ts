import { describe, expect, it } from '@jest/globals';
import { releaseCodePages, textMappings } from './code-pages.js';

const MAPS = `00200000-01a39000 r--p 00000000 fe:00 5604364    /usr/bin/limiquantix-agent
01a40000-0684a000 r-xp 01838000 fe:00 5604364    /usr/bin/limiquantix-agent
0684a000-0690a000 rw-p 0664a000 fe:00 5604364    /usr/bin/limiquantix-agent
7ff03cf6c000-7ff03d0c2000 r-xp 00026000 fe:00 339380   /usr/lib/x86_64-linux-gnu/libc.so.6
7ff03d0c2000-7ff03d0c3000 r-xp 00000000 00:00 0
`;

describe('code pages', () => {
  it('should pick only the executable mappings of the given file', () => {
    expect(textMappings(MAPS, '/usr/bin/limiquantix-agent')).toEqual([[0x01a40000n, 0x0684a000n]]);
    expect(textMappings(MAPS, '/usr/bin/other')).toEqual([]);
  });

  it('should do nothing under Node.js', async () => {
    expect(process.versions.bun).toBeUndefined();
    expect(await releaseCodePages()).toBe(0);
  });
});
