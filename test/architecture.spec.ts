// The layers stay one-way (ARCHITECTURE.md): no import circle between files, and no folder of an
// app that imports a folder which imports it back.
import { describe, expect, it } from '@jest/globals';
import { fileCycles, folderCycles, importGraph } from '../scripts/lint/import-graph.mjs';

const TREES = [
  'apps/control-plane/src',
  'apps/node-daemon/src',
  'apps/guest-agent/src',
  'apps/lqctl/src',
  'libs/proto/src',
  'libs/auth/src',
  'libs/audit/src',
];

describe('architecture', () => {
  it.each(TREES)('should have no import circle between the files of %s', (root) => {
    expect(fileCycles(importGraph(root)).map((c) => c.join(' → '))).toEqual([]);
  });

  it.each(TREES)('should have no two folders of %s that import each other', (root) => {
    expect(
      folderCycles(importGraph(root)).map(
        (p) => `${p.folders.join(' ⇄ ')}: ${p.evidence.join('; ')}`,
      ),
    ).toEqual([]);
  });
});
