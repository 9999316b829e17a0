// Builds what the tests run, once per test run: the bundles, the guest agent's executables (the
// files a guest runs; cached by content in .cache), the tsc output and the web console.
import { execFileSync } from 'node:child_process';

export default function globalSetup() {
  process.env.TZ = 'UTC';
  execFileSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' });
  // Every target: the agent's own suites run linux-amd64; test/packaging runs the others under
  // qemu-user and in a musl root, and packs all of them.
  execFileSync(process.execPath, ['scripts/build-executables.mjs'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  // The NestJS tiers are compiled by tsc (decorator metadata; esbuild cannot emit it).
  execFileSync(process.execPath, ['scripts/build-tsc.mjs'], { stdio: 'inherit' });
  // The web console the control plane serves (skipped when apps/console is unchanged).
  execFileSync(process.execPath, ['scripts/build-console.mjs'], { stdio: 'inherit' });
}
