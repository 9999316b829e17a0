// Builds the bundles once per test run: integration tests spawn the same files a guest runs.
import { execFileSync } from 'node:child_process';

export default function globalSetup() {
  process.env.TZ = 'UTC';
  execFileSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' });
  // The NestJS tiers are compiled by tsc (decorator metadata; esbuild cannot emit it).
  execFileSync(process.execPath, ['scripts/build-tsc.mjs'], { stdio: 'inherit' });
  // The web console the control plane serves (skipped when apps/console is unchanged).
  execFileSync(process.execPath, ['scripts/build-console.mjs'], { stdio: 'inherit' });
}
