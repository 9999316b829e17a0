// Acceptance 4 of issue 16: the console and lqctl compile against @lq/api, so changing a field of
// an API view breaks their type-check (and the control plane's view builder's). A copy of
// libs/api with VmView's `agent_state` renamed is put in place of @lq/api by a path override,
// and tsc checks lqctl (with the control plane's vm.view.ts) and the console against it: it must
// fail, and only on that field.
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');

/** tsc's exit code and its diagnostics (one per line, with the file first). */
function tsc(project: string): Promise<{ code: number; errors: string[] }> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [TSC, '--noEmit', '-p', project],
      { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout) => {
        const code = err ? ((err as { code?: number }).code ?? 1) : 0;
        done({ code, errors: stdout.split('\n').filter((l) => /error TS\d+/.test(l)) });
      },
    );
  });
}

describe('@lq/api is the contract the console and lqctl compile against', () => {
  let dir: string;
  let api: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'lq-api-contract-'));
    api = join(dir, 'api');
    cpSync(join(ROOT, 'libs/api/src'), api, { recursive: true });
    const file = join(api, 'inventory.ts');
    const text = readFileSync(file, 'utf8');
    const view = text.indexOf('export interface VmView {');
    const field = text.indexOf('  agent_state: AgentState;', view);
    expect([view, field].every((i) => i >= 0)).toBe(true);
    writeFileSync(
      file,
      `${text.slice(0, field)}  agent_status: AgentState;${text.slice(field + '  agent_state: AgentState;'.length)}`,
    );
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('should break lqctl and the control plane’s VmView builder when a VmView field is renamed', async () => {
    const root = JSON.parse(readFileSync(join(ROOT, 'tsconfig.json'), 'utf8')) as {
      compilerOptions: { paths: Record<string, string[]> };
    };
    const paths = Object.fromEntries(
      Object.entries(root.compilerOptions.paths).map(([k, v]) => [k, v.map((p) => join(ROOT, p))]),
    );
    const project = join(dir, 'tsconfig.lqctl.json');
    writeFileSync(
      project,
      JSON.stringify({
        extends: join(ROOT, 'tsconfig.json'),
        compilerOptions: {
          paths: { ...paths, '@lq/api': [join(api, 'index.ts')] },
          typeRoots: [join(ROOT, 'node_modules/@types')],
          // The copy lives outside the repository.
          rootDir: '/',
        },
        include: [
          join(ROOT, 'apps/lqctl/src/**/*.ts'),
          join(ROOT, 'apps/control-plane/src/inventory/vm.view.ts'),
        ],
        exclude: [],
      }),
    );
    const r = await tsc(project);
    expect(r.code).not.toBe(0);
    expect(r.errors.filter((e) => !/agent_state|agent_status/.test(e))).toEqual([]);
    // lqctl's own code, not only its tests.
    expect(r.errors.some((e) => /^apps\/lqctl\/src\/[^(]*(?<!\.spec)\.ts\(/.test(e))).toBe(true);
    expect(r.errors.some((e) => e.startsWith('apps/control-plane/src/inventory/vm.view.ts'))).toBe(
      true,
    );
  }, 180_000);

  it('should break the console when a VmView field is renamed', async () => {
    const project = join(dir, 'tsconfig.console.json');
    writeFileSync(
      project,
      JSON.stringify({
        extends: join(ROOT, 'apps/console/tsconfig.json'),
        compilerOptions: { paths: { '@lq/api': [join(api, 'index.ts')] } },
        include: [join(ROOT, 'apps/console/src/**/*.ts'), join(ROOT, 'apps/console/src/**/*.tsx')],
      }),
    );
    const r = await tsc(project);
    expect(r.code).not.toBe(0);
    expect(r.errors.filter((e) => !/agent_state|agent_status/.test(e))).toEqual([]);
    expect(r.errors.some((e) => /^apps\/console\/src\/[^(]*(?<!\.test)\.tsx?\(/.test(e))).toBe(
      true,
    );
  }, 180_000);
});
