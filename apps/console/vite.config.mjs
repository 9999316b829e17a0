// The web console: `node scripts/build-console.mjs` builds it into dist/console, which the
// control plane serves at /. `npx vite apps/console` serves it with hot reload, proxying the API
// to a control plane on :8080 (npm start). `npx vitest run --root apps/console` runs its tests.
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = dirname(fileURLToPath(import.meta.url));
const api = process.env.LQ_CONSOLE_API ?? 'http://127.0.0.1:8080';

export default defineConfig({
  root: here,
  base: '/',
  // The REST API's types, shared with the control plane and lqctl (libs/api: types only).
  resolve: { alias: { '@lq/api': resolve(here, '../../libs/api/src/index.ts') } },
  // No React plugin: esbuild's automatic JSX runtime is all the build needs.
  esbuild: { jsx: 'automatic' },
  build: {
    outDir: resolve(here, '../../dist/console'),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    reportCompressedSize: false,
  },
  server: { proxy: { '/api': api } },
  test: {
    root: here,
    environment: 'jsdom',
    include: ['src/**/*.test.{ts,tsx}'],
    restoreMocks: true,
  },
});
