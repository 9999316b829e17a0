import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { create } from '@bufbuild/protobuf';
import { ExecuteRequestSchema } from '@lq/proto';
import { defaultConfig } from '../config.js';
import { ExecPlanner } from './exec-planner.js';
import type { UserResolver } from './user-resolver.js';

/** A resolver that names the running user with the given home. */
function usersWithHome(home: string): UserResolver {
  return {
    lookupUser: () => Promise.resolve({ name: 'someone', home, shell: '/bin/sh' }),
  } as unknown as UserResolver;
}

const request = create(ExecuteRequestSchema, { argv: ['true'] });

describe('ExecPlanner working directory', () => {
  it('should start in the home while it is a directory and in / once it is gone', async () => {
    const home = mkdtempSync(join(tmpdir(), 'lq-planner-home-'));
    const planner = new ExecPlanner(defaultConfig(), usersWithHome(home), 0);
    expect((await planner.plan(request)).cwd).toBe(home);
    rmSync(home, { recursive: true });
    expect((await planner.plan(request)).cwd).toBe('/');
  });

  it('should trust a home found to be a directory until the recheck interval ends', async () => {
    const home = mkdtempSync(join(tmpdir(), 'lq-planner-home-'));
    const planner = new ExecPlanner(defaultConfig(), usersWithHome(home), 60_000);
    expect((await planner.plan(request)).cwd).toBe(home);
    rmSync(home, { recursive: true });
    // Within the interval no stat is made: the kept answer stands.
    expect((await planner.plan(request)).cwd).toBe(home);
  });

  it('should not keep a home that is not a directory', async () => {
    const planner = new ExecPlanner(
      defaultConfig(),
      usersWithHome(join(tmpdir(), 'lq-planner-missing-home')),
      60_000,
    );
    expect((await planner.plan(request)).cwd).toBe('/');
    expect((await planner.plan(request)).cwd).toBe('/');
  });
});
