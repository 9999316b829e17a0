// Runs the web console's component tests (Vitest, jsdom: apps/console/src/**/*.test.tsx) and
// type-checks the console with its own tsconfig (DOM + JSX), so `npm test` covers both.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { REPO_ROOT } from '../support/service-process.js';

const bin = (name: string) => join(REPO_ROOT, 'node_modules/.bin', name);

function run(command: string, args: string[]): { status: number | null; output: string } {
  const r = spawnSync(command, args, {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    env: { ...process.env, NODE_OPTIONS: '', CI: 'true', NO_COLOR: '1', FORCE_COLOR: '0' },
    timeout: 170_000,
  });
  const output = `${r.stdout}${r.stderr}${r.error ? String(r.error) : ''}`;
  // eslint-disable-next-line no-control-regex
  return { status: r.status, output: output.replace(/\x1b\[[0-9;]*m/g, '') };
}

describe('web console unit and component tests', () => {
  it('should pass every Vitest test of apps/console', () => {
    const r = run(bin('vitest'), ['run', '--root', 'apps/console']);
    if (r.status !== 0) {
      throw new Error(`vitest failed (${r.status}):\n${r.output.slice(-8000)}`);
    }
    expect(r.output).toMatch(/Tests\s+\d+ passed/);
  }, 180_000);

  it('should type-check apps/console (tsc with DOM and JSX)', () => {
    const r = run(bin('tsc'), ['--noEmit', '-p', 'apps/console/tsconfig.json']);
    expect([r.status, r.output.trim()]).toEqual([0, '']);
  }, 180_000);
});
