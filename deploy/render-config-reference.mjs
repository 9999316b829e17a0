#!/usr/bin/env node
// Writes the configuration reference tables of deploy/README.md from the services' own lists
// (CONTROL_PLANE_ENV, ENV_VARIABLES), so the reference cannot miss a variable:
//
//   node scripts/build-tsc.mjs && node deploy/render-config-reference.mjs          # rewrite
//   node deploy/render-config-reference.mjs --check        # exit 1 when README.md is stale
//
// Each table sits between `<!-- config:<name>:begin -->` and `<!-- config:<name>:end -->`.
// test/deploy/compose.spec.ts compares them with the lists in the sources.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const README = join(here, 'README.md');

/** Table name → the built module and the export holding its rows. */
export const TABLES = {
  'control-plane': {
    module: 'dist/tsc/apps/control-plane/src/config/env.schema.js',
    export: 'CONTROL_PLANE_ENV',
  },
  'node-daemon': {
    module: 'dist/tsc/apps/node-daemon/src/config/env.schema.js',
    export: 'ENV_VARIABLES',
  },
};

const HEADER = ['variable', 'default', 'meaning'];

/** The cells of one row as they appear in the README (names in backticks, `|` escaped). */
export function rowCells([names, fallback, meaning]) {
  const cell = (s) => s.replace(/\|/g, '\\|');
  return [
    names
      .split(' / ')
      .map((n) => `\`${n}\``)
      .join(' / '),
    cell(fallback),
    cell(meaning),
  ];
}

/** A Markdown table, columns padded as Prettier pads them. */
export function renderEnvTable(rows) {
  const lines = [HEADER, ...rows.map(rowCells)];
  const widths = HEADER.map((_, i) => Math.max(3, ...lines.map((cells) => cells[i].length)));
  const line = (cells) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [
    line(lines[0]),
    `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`,
    ...lines.slice(1).map(line),
  ].join('\n');
}

const marker = (name, end) => `<!-- config:${name}:${end ? 'end' : 'begin'} -->`;

/** The text between a table's markers (trimmed), or undefined when they are missing. */
export function tableBlock(readme, name) {
  const begin = readme.indexOf(marker(name, false));
  const end = readme.indexOf(marker(name, true));
  if (begin < 0 || end < begin) {
    return undefined;
  }
  return readme.slice(begin + marker(name, false).length, end).trim();
}

/** The README with one table replaced. */
export function replaceTable(readme, name, table) {
  const begin = readme.indexOf(marker(name, false));
  const end = readme.indexOf(marker(name, true));
  if (begin < 0 || end < begin) {
    throw new Error(`README.md lacks ${marker(name, false)} … ${marker(name, true)}`);
  }
  return `${readme.slice(0, begin + marker(name, false).length)}\n\n${table}\n\n${readme.slice(end)}`;
}

async function main(argv) {
  const root = resolve(here, '..');
  let readme = readFileSync(README, 'utf8');
  const original = readme;
  for (const [name, source] of Object.entries(TABLES)) {
    const mod = await import(pathToFileURL(join(root, source.module)).href).catch((err) => {
      throw new Error(`${source.module}: ${err.message} (run node scripts/build-tsc.mjs first)`);
    });
    readme = replaceTable(readme, name, renderEnvTable(mod[source.export]));
  }
  if (argv.includes('--check')) {
    if (readme !== original) {
      process.stderr.write(
        'deploy/README.md: the configuration reference is stale; run node deploy/render-config-reference.mjs\n',
      );
      process.exitCode = 1;
    }
    return;
  }
  if (readme !== original) {
    writeFileSync(README, readme);
    process.stderr.write('deploy/README.md: configuration reference updated\n');
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((err) => {
    process.stderr.write(`render-config-reference: ${err.message}\n`);
    process.exitCode = 2;
  });
}
