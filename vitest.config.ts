import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The Temporal SDK's native bridge needs processes, not worker threads; test files share one
    // dev server and one Docker engine, so they run one after another.
    pool: 'forks',
    fileParallelism: false,
    globalSetup: ['test/support/global-setup.ts'],
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    reporters: ['default'],
    // Worker processes the tests spawn make no reaper schedule: a reaper run in the middle of another
    // test would remove the containers it makes by hand. The reaper's own tests ask for one.
    env: { WARDEN_REAPER_INTERVAL_SECONDS: '0' },
  },
});
