// Type-checked typescript-eslint (STYLE.md): floating promises, exhaustive switches, eqeqeq,
// curly; the guest agent may not import NestJS (it runs in every VM: plain Node.js only).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'node_modules/',
      'dist/',
      'coverage/',
      'libs/proto/src/gen/',
      'apps/control-plane/src/common/openapi/api-schemas.gen.ts',
      '**/*.js',
      '**/*.mjs',
      '**/*.cjs',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': [
        'error',
        { considerDefaultExhaustiveForUnions: true },
      ],
      eqeqeq: ['error', 'always'],
      curly: ['error', 'all'],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['**/*.spec.ts', 'apps/*/test/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/unbound-method': 'off',
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    files: ['apps/guest-agent/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['@nestjs/*'], message: 'The guest agent runs in every VM: no NestJS.' },
          ],
        },
      ],
    },
  },
  {
    // The agent: nothing of the host side (agentctl and sim-host are apps of their own).
    files: ['apps/guest-agent/src/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['@nestjs/*'], message: 'The guest agent runs in every VM: no NestJS.' },
            {
              group: ['@lq/host', '@lq/auth', '@lq/audit', '@lq/api', '@lq/runtime'],
              message: 'The guest agent imports only @lq/proto: the rest is the host side.',
            },
          ],
        },
      ],
    },
  },
);
