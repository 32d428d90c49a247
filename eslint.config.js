/**
 * ESLint (flat config) for the JupyterLab extension's TypeScript and the repo's own
 * JavaScript config files. Formatting is prettier's (.prettierrc.json), not ESLint's.
 * `make lint` runs it; generated files (*.generated.ts) are written by tools and left out.
 */
const js = require('@eslint/js');
const { defineConfig, globalIgnores } = require('eslint/config');
const globals = require('globals');
const tseslint = require('typescript-eslint');

module.exports = defineConfig([
  globalIgnores([
    '.venv/',
    'build/',
    'labextension/lib/',
    'llmtrace_nb/labextension/',
    '**/*.generated.ts'
  ]),
  {
    files: ['**/*.js'],
    extends: [js.configs.recommended],
    languageOptions: { sourceType: 'commonjs', globals: globals.node }
  },
  {
    files: ['labextension/style/**/*.js'],
    languageOptions: { sourceType: 'module' }
  },
  {
    files: ['labextension/**/*.ts'],
    extends: [js.configs.recommended, tseslint.configs.recommended],
    languageOptions: { globals: globals.browser },
    rules: {
      // tsc already fails on unused names (noUnusedLocals, noUnusedParameters);
      // a leading underscore marks one kept on purpose.
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }
      ],
      // a defensive first value (`let ok = false` before a try that sets it) is fine
      'no-useless-assignment': 'off',
      eqeqeq: ['error', 'smart'],
      'prefer-const': 'error'
    }
  },
  {
    // jest in jsdom: browser and node globals; tests may reach into objects with `any`
    files: ['labextension/test/**/*.{ts,js}'],
    languageOptions: { globals: { ...globals.browser, ...globals.node, ...globals.jest } },
    rules: { '@typescript-eslint/no-explicit-any': 'off' }
  }
]);
