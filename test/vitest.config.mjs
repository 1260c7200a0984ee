import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: fileURLToPath(new URL('..', import.meta.url)),
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['**/node_modules/**'],
    pool: 'forks',
    globalSetup: ['test/global-setup.mjs'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // An unhandled rejection or uncaught exception anywhere fails the run.
    dangerouslyIgnoreUnhandledErrors: false,
  },
});
