// The import graph of a source tree (relative imports only), its file cycles and the pairs of
// folders that import each other. Used by the architecture test and runnable by hand:
//   node scripts/lint/import-graph.mjs apps/control-plane/src
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"](\.{1,2}\/[^'"]+)['"]/g;
const SIDE_EFFECT = /(?:^|\n)\s*import\s+['"](\.{1,2}\/[^'"]+)['"]/g;

function sources(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      out.push(...sources(p));
    } else if (/\.tsx?$/.test(name) && !/\.(spec|test)\.tsx?$/.test(name)) {
      out.push(p);
    }
  }
  return out;
}

/** file → files it imports (relative to `root`), type-only imports included. */
export function importGraph(root) {
  const abs = resolve(root);
  const graph = new Map();
  for (const file of sources(abs)) {
    const text = readFileSync(file, 'utf8');
    const deps = new Set();
    for (const re of [IMPORT, SIDE_EFFECT]) {
      for (const m of text.matchAll(re)) {
        const target = resolve(dirname(file), m[1].replace(/\.js$/, '.ts'));
        if (target.startsWith(abs)) {
          deps.add(relative(abs, target));
        }
      }
    }
    graph.set(relative(abs, file), deps);
  }
  return graph;
}

/** Every elementary cycle's first occurrence (each as a path of files), by DFS. */
export function fileCycles(graph) {
  const cycles = [];
  const state = new Map();
  const stack = [];
  const visit = (n) => {
    state.set(n, 'open');
    stack.push(n);
    for (const d of graph.get(n) ?? []) {
      if (state.get(d) === 'open') {
        cycles.push([...stack.slice(stack.indexOf(d)), d]);
      } else if (!state.has(d)) {
        visit(d);
      }
    }
    stack.pop();
    state.set(n, 'done');
  };
  for (const n of graph.keys()) {
    if (!state.has(n)) {
      visit(n);
    }
  }
  return cycles;
}

/** The top folder of a file (`inventory/x.ts` → `inventory`; root files → `.`). */
function folderOf(file) {
  const i = file.indexOf('/');
  return i < 0 ? '.' : file.slice(0, i);
}

/** Pairs of top folders that import each other, with one file import each way as evidence. */
export function folderCycles(graph) {
  const edges = new Map();
  for (const [file, deps] of graph) {
    for (const d of deps) {
      const a = folderOf(file);
      const b = folderOf(d);
      if (a !== b && a !== '.' && b !== '.') {
        const key = `${a}->${b}`;
        if (!edges.has(key)) {
          edges.set(key, `${file} → ${d}`);
        }
      }
    }
  }
  const pairs = [];
  for (const [key, evidence] of edges) {
    const [a, b] = key.split('->');
    const back = edges.get(`${b}->${a}`);
    if (back && a < b) {
      pairs.push({ folders: [a, b], evidence: [evidence, back] });
    }
  }
  return pairs;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const root = process.argv[2] ?? 'apps/control-plane/src';
  const graph = importGraph(root);
  const cycles = fileCycles(graph);
  const pairs = folderCycles(graph);
  for (const c of cycles) {
    console.log(`file cycle: ${c.join(' → ')}`);
  }
  for (const p of pairs) {
    console.log(`folders import each other: ${p.folders.join(' ⇄ ')} (${p.evidence.join('; ')})`);
  }
  console.log(`${graph.size} files, ${cycles.length} file cycles, ${pairs.length} folder pairs`);
  process.exitCode = cycles.length + pairs.length > 0 ? 1 : 0;
}
