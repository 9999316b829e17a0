// Jest 30 in ESM mode (NODE_OPTIONS=--experimental-vm-modules, set by the npm scripts).
// ts-jest transpiles only (isolatedModules); `tsc --noEmit` type-checks in CI.
/** @type {import('jest').Config} */
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }],
  },
  moduleNameMapper: {
    '^@lq/proto$': '<rootDir>/libs/proto/src/index.ts',
    '^@lq/proto/wire$': '<rootDir>/libs/proto/src/wire.ts',
    '^@lq/host$': '<rootDir>/libs/host/src/index.ts',
    '^@lq/runtime$': '<rootDir>/libs/runtime/src/index.ts',
    '^@lq/auth$': '<rootDir>/libs/auth/src/index.ts',
    '^@lq/auth/migrations$': '<rootDir>/libs/auth/src/migrations/index.ts',
    '^@lq/api$': '<rootDir>/libs/api/src/index.ts',
    '^@lq/audit$': '<rootDir>/libs/audit/src/index.ts',
    '^@lq/audit/offline$': '<rootDir>/libs/audit/src/offline/index.ts',
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  testMatch: ['<rootDir>/{apps,libs,test}/**/*.spec.ts'],
  globalSetup: '<rootDir>/test/global-setup.js',
  testTimeout: 60000,
  maxWorkers: 2,
};
