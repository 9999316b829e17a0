import { describe, expect, it } from '@jest/globals';
import { createRequire } from 'node:module';
import type { ParsedCommand } from '../args.js';
import { outputFormat, renderList, toYaml, type ListSpec } from './listing.js';

// A real YAML reader (js-yaml comes with @nestjs/swagger; it has no type declarations).
const { load } = createRequire(import.meta.url)('js-yaml') as { load(text: string): unknown };

function cmd(values: ParsedCommand['values']): ParsedCommand {
  return { name: 'x', values, positionals: [], remote: [], dashdash: false };
}

const spec: ListSpec<{ id: string; n: number | null; note: string }> = {
  name: (r) => r.id,
  columns: [
    { header: 'ID', cell: (r) => r.id },
    { header: 'N', cell: (r) => r.n, align: 'right' },
    { header: 'NOTE', cell: (r) => r.note, wide: true },
  ],
};
const rows = [
  { id: 'vm-1', n: 3, note: 'a: b' },
  { id: 'vm-10', n: null, note: 'yes' },
];

describe('listing output', () => {
  it('should print a table, wide columns only with -o wide, and no header with --no-headers', () => {
    expect(renderList('table', rows, spec)).toBe('ID     N\nvm-1   3\nvm-10  -\n');
    expect(renderList('wide', rows, spec)).toBe('ID     N  NOTE\nvm-1   3  a: b\nvm-10  -  yes\n');
    expect(renderList('table', rows, spec, false)).toBe('vm-1   3\nvm-10  -\n');
    expect(renderList('name', rows, spec)).toBe('vm-1\nvm-10\n');
  });

  it('should print JSON and YAML that parse back to the objects', () => {
    expect(JSON.parse(renderList('json', rows, spec))).toEqual(rows);
    expect(load(renderList('yaml', rows, spec))).toEqual(rows);
  });

  it('should quote YAML strings a reader would take for something else', () => {
    const tricky = {
      s: [
        'yes',
        'no',
        'null',
        '~',
        '1e3',
        '0x10',
        '.5',
        '.inf',
        '- a',
        'a #b',
        'x: y',
        '',
        ' lead',
        'trail ',
      ],
      nested: { empty: {}, list: [], deep: [{ a: 1, b: [true, null] }] },
      'key: odd': 'é "quoted" \\ back',
    };
    expect(load(toYaml(tricky))).toEqual(tricky);
    expect(load(toYaml([]))).toEqual([]);
  });

  it('should take -o, --json as -o json, and refuse an unknown format in lqctl’s words', () => {
    expect(outputFormat(cmd({}))).toBe('table');
    expect(outputFormat(cmd({ json: true }))).toBe('json');
    expect(outputFormat(cmd({ output: 'yaml' }))).toBe('yaml');
    expect(() => outputFormat(cmd({ output: 'xml' }))).toThrow(
      '-o must be one of table, wide, json, yaml, name (got xml)',
    );
    expect(() => outputFormat(cmd({ output: 'yaml', json: true }))).toThrow(/disagree/);
  });
});
