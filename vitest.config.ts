import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Two cores: end-to-end files start real servers; keep parallelism modest.
    maxWorkers: 2,
    reporters: ['default'],
  },
});
