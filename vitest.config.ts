import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Two cores: end-to-end files start real servers; keep parallelism modest.
    maxWorkers: 2,
    // A gateway a test starts through the CLI runs in one process (`--workers 1`) unless the
    // test asks for workers itself (a flag beats the environment): tests pin one process's
    // behaviour (start-up errors, signals, log faults), and 8 helpers share 2 cores. Workers
    // are tested with the real CLI and `--workers 2` in test/workers/.
    env: { EGRESS_WORKERS: '1' },
    reporters: ['default'],
  },
});
