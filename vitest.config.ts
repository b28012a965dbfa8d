import { defineConfig } from 'vitest/config';

/** API tests about the sqlite file itself (paths, permissions, two processes on one file). */
const SQLITE_ONLY = ['test/api/persistence-restart.test.ts', 'test/api/two-processes-one-db.test.ts'];

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Two cores: end-to-end files start real servers; keep parallelism modest.
    maxWorkers: 2,
    reporters: ['default'],
    projects: [
      { extends: true, test: { name: 'sqlite', include: ['test/**/*.test.ts'] } },
      // The whole API suite again with the control plane on a real PostgreSQL (test/api/helpers.ts).
      // initdb and the first start of the shared server run in a beforeAll: a budget for a loaded box.
      { extends: true, test: { name: 'postgres', include: ['test/api/**/*.test.ts'], exclude: SQLITE_ONLY, env: { EGRESS_TEST_DB: 'postgres' }, hookTimeout: 120_000 } },
    ],
  },
});
