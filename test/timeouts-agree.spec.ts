// Issue 21 item 3: the execution timeouts' default and maximum are the same in the server's
// configuration, lqctl's --help and both READMEs (a test across apps, so it lives here).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import {
  CONTROL_PLANE_ENV,
  parseControlPlaneEnv,
} from '../apps/control-plane/src/config/env.schema.js';
import { formatSeconds } from '../apps/lqctl/src/commands/exec.command.js';
import { parseTimeoutSeconds } from '../apps/lqctl/src/args.js';
import { usageOf } from '../apps/lqctl/src/usage.js';

function fallback(name: string): number {
  return Number(CONTROL_PLANE_ENV.find(([n]) => n === name)![1]);
}

describe('execution timeouts agree everywhere', () => {
  const sync = fallback('LQ_GUEST_TIMEOUT_SECONDS');
  const async = fallback('LQ_EXEC_ASYNC_TIMEOUT_SECONDS');
  const max = fallback('LQ_GUEST_TIMEOUT_MAX_SECONDS');

  it('should document the defaults the server applies', () => {
    const config = parseControlPlaneEnv({ DATABASE_URL: 'postgres://x@localhost/x' });
    expect([
      config.guestTimeoutSeconds,
      config.execAsyncTimeoutSeconds,
      config.guestTimeoutMaxSeconds,
    ]).toEqual([sync, async, max]);
  });

  it('should say the same default and maximum in lqctl exec and run --help and the READMEs', () => {
    const words = [
      `default ${formatSeconds(async)}`,
      `--sync ${formatSeconds(sync)}`,
      `at most ${formatSeconds(max)}`,
    ];
    for (const help of [usageOf('exec')!, usageOf('run')!]) {
      const flat = help.replace(/\s+/g, ' ');
      for (const w of words) {
        expect(flat).toContain(w);
      }
    }
    const lqctlReadme = readFileSync('apps/lqctl/README.md', 'utf8').replace(/\s+/g, ' ');
    expect(lqctlReadme).toContain(
      `default ${formatSeconds(async)} (the server's \`LQ_EXEC_ASYNC_TIMEOUT_SECONDS\`; \`exec --sync\` ${formatSeconds(sync)}`,
    );
    expect(lqctlReadme).toContain(
      `at most ${formatSeconds(max)} (\`LQ_GUEST_TIMEOUT_MAX_SECONDS\``,
    );
    const readme = readFileSync('README.md', 'utf8');
    for (const [name, value] of [
      ['LQ_GUEST_TIMEOUT_SECONDS', sync],
      ['LQ_EXEC_ASYNC_TIMEOUT_SECONDS', async],
      ['LQ_GUEST_TIMEOUT_MAX_SECONDS', max],
    ] as const) {
      expect(readme).toMatch(new RegExp(`^\\| \`${name}\` +\\| ${value} +\\|`, 'm'));
    }
  });

  it('should accept what a server may allow and say the bounds in lqctl’s words', () => {
    expect(parseTimeoutSeconds(formatSeconds(max))).toBe(max);
    expect(() => parseTimeoutSeconds('25h')).toThrow(
      '--timeout must be between 1s and 24h (got 25h)',
    );
    expect(() => parseTimeoutSeconds('0')).toThrow('--timeout must be between 1s and 24h');
    expect(formatSeconds(5400)).toBe('1h30m');
    expect(formatSeconds(90)).toBe('1m30s');
  });
});
