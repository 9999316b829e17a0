import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from '@jest/globals';

const run = promisify(execFile);

describe('api-schemas.gen.ts (the OpenAPI schemas of @lq/api)', () => {
  it('should be what scripts/api-schemas.mjs derives from libs/api now', async () => {
    const result = await run(process.execPath, ['scripts/api-schemas.mjs', '--check']).catch(
      (err: Error & { stderr?: string }) => ({ stderr: err.stderr ?? err.message }),
    );
    expect(result.stderr).toBe('');
  });
});
