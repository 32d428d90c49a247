/**
 * Jest: unit tests of the JupyterLab renderer (labextension/), run in jsdom.
 *
 * The trace documents the tests render are made by the Python package itself
 * (tests/docs.py) in globalSetup, so the renderer is always tested against what the
 * current llmtrace_nb writes, not against a stale hand-written copy.
 */
module.exports = {
  testEnvironment: 'jsdom',
  roots: ['<rootDir>/labextension/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/labextension/test/tsconfig.json' }]
  },
  setupFiles: ['<rootDir>/labextension/test/setup-env.js'],
  globalSetup: '<rootDir>/labextension/test/global-setup.js',
  testTimeout: 30000
};
