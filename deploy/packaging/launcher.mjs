// The guest packages' launcher (files/launcher.sh.in): how /usr/bin/limiquantix-agent and
// /usr/bin/limiquantix-agentctl start their bundles with the system's Node.js. Rendered here for
// the packages (build-packages.mjs) and for the tests and benchmarks that start the agent the
// way a guest does.
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const TEMPLATE = join(dirname(fileURLToPath(import.meta.url)), 'files/launcher.sh.in');

/** The launcher script for `name`, which runs ../lib/limiquantix-agent/<bundle> beside it. */
export function renderLauncher(name, bundle, what) {
  return readFileSync(TEMPLATE, 'utf8')
    .replaceAll('@NAME@', name)
    .replaceAll('@BUNDLE@', bundle)
    .replaceAll('@WHAT@', what);
}

/**
 * Lays out <root>/bin/<name> and <root>/lib/limiquantix-agent/<bundle> (a link to bundlePath) as
 * the packages install them under /usr; returns the launcher's path.
 */
export function installLauncher(root, name, bundlePath, what) {
  const bin = join(root, 'bin', name);
  const lib = join(root, 'lib/limiquantix-agent');
  rmSync(bin, { force: true });
  rmSync(join(lib, basename(bundlePath)), { force: true });
  mkdirSync(dirname(bin), { recursive: true });
  mkdirSync(lib, { recursive: true });
  symlinkSync(bundlePath, join(lib, basename(bundlePath)));
  writeFileSync(bin, renderLauncher(name, basename(bundlePath), what), { mode: 0o755 });
  return bin;
}
