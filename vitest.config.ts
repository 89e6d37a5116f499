import { defineConfig } from 'vitest/config';

/**
 * The end-to-end tests of storage (the large-body one among them) and sync, run a second time on
 * servers without the native module (`YUNJI_NATIVE=off`, passed on by test/helpers/server.ts).
 */
const NATIVE_OFF = ['test/e2e/storage-*.test.ts', 'test/e2e/sync-*.test.ts'];

export default defineConfig({
  test: {
    // End-to-end tests start real server processes; a slow machine needs room, not a wall-clock target.
    testTimeout: 60_000,
    hookTimeout: 90_000,
    pool: 'forks',
    maxWorkers: 2,
    projects: [
      { extends: true, test: { name: 'all', include: ['test/**/*.test.ts'] } },
      { extends: true, test: { name: 'native-off', include: NATIVE_OFF, env: { YUNJI_NATIVE: 'off' } } },
    ],
  },
});
