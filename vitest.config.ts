import { configDefaults, defineConfig } from 'vitest/config';

/**
 * The unit group (`npm run test:unit`): pure functions — the policy engine, parsers, framing,
 * fixtures, the layering rule — with no server, child process or socket, in under 20 s on a
 * quiet machine. The CPU-time comparisons (test/linear-time/, parser-linear-time) are left to
 * the integration group: they want quiet cores, not speed.
 * Everything else is the integration group (`npm run test:integration`); `npm test` runs both.
 * A new test file is integration unless it is listed here.
 */
const UNIT = [
  'test/policy/**/*.test.ts',
  'test/architecture/**/*.test.ts',
  'test/bench/**/*.test.ts',
  'test/fuzz/corpus-replay.test.ts',
  'test/attacks/regex-backtracking-audit.test.ts',
  'test/cli/policy-files.test.ts',
  'test/dns/wire-fuzz.test.ts',
  'test/policy-lifecycle/denial-record-bounds.test.ts',
  'test/proxy/chunked-framing.test.ts',
  'test/proxy/header-value-backtracking.test.ts',
  'test/proxy/handshake-window.test.ts',
  'test/socks/socks5-parser.test.ts',
  'test/startup/config-precedence.test.ts',
  'test/agent/mcp-hub-rules.test.ts',
  'test/agent/agent-admission.test.ts',
];

/**
 * Tests that measure the gateway against a same-run control (CPU time, a victim's p99, the
 * event loop's delay, RSS under load): project `timing`, run after everything else, one file
 * at a time, so the other test files are not the load they measure.
 */
const TIMING = [
  'test/linear-time/**/*.test.ts',
  'test/attacks/parser-linear-time.test.ts',
  'test/attacks/stall-budget-every-door.test.ts',
  'test/attacks/api-list-stalls-doors.test.ts',
  'test/attacks/tenant-complexity-attacks-victim.test.ts',
  'test/attacks/dns-cache-flush-by-one-account.test.ts',
  'test/attacks/dns-tcp-devbox-share.test.ts',
  'test/attacks/upstream-pool-fd-exhaustion.test.ts',
  'test/attacks/idle-connection-flood.test.ts',
  'test/attacks/learn-flood-stall-budget.test.ts',
  // RSS under a 60 s load against its own warmed-up baseline: grew past its budget with four files beside it.
  'test/startup/log-destination-faults.test.ts',
];

/**
 * Parallel test files: VITEST_MAX_WORKERS, else 4. Most integration files spend their time
 * waiting (on child processes starting, on time-outs they test, on sockets), so on the
 * two-core development machine four files at a time finish the run sooner than two; the
 * timing tests compare against a control measured in the same run, not a fixed budget.
 */
const maxWorkers = Number(process.env.VITEST_MAX_WORKERS) || 4;

/** API tests about the sqlite file itself (paths, permissions, two processes on one file). */
const SQLITE_ONLY = ['test/api/persistence-restart.test.ts', 'test/api/two-processes-one-db.test.ts'];

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    maxWorkers,
    // A gateway a test starts through the CLI runs in one process (`--workers 1`) unless the
    // test asks for workers itself (a flag beats the environment): tests pin one process's
    // behaviour (start-up errors, signals, log faults), and 8 helpers share 2 cores. Workers
    // are tested with the real CLI and `--workers 2` in test/workers/.
    env: { EGRESS_WORKERS: '1' },
    // The run's own TMPDIR and process mark, checked at the end for anything left behind.
    globalSetup: ['test/support/global-setup.ts'],
    // After each file: kill the process trees it started, remove its temporary folders.
    setupFiles: ['test/support/setup-file.ts'],
    // vitest's default lines with a running count and the project of each file.
    reporters: ['./test/support/progress-reporter.ts'],
    projects: [
      { extends: true, test: { name: 'unit', include: UNIT } },
      { extends: true, test: { name: 'integration', include: ['test/**/*.test.ts'], exclude: [...configDefaults.exclude, ...UNIT, ...TIMING] } },
      { extends: true, test: { name: 'timing', include: TIMING, maxWorkers: 1, sequence: { groupOrder: 1 } } },
      // The whole API suite again with the control plane on a real PostgreSQL (test/support/api.ts):
      // one server for the whole run (test/support/postgres.ts), started by the first file that
      // needs it, which the others wait for: a budget for a loaded box.
      { extends: true, test: { name: 'postgres', include: ['test/api/**/*.test.ts'], exclude: SQLITE_ONLY, env: { EGRESS_TEST_DB: 'postgres' }, hookTimeout: 120_000 } },
    ],
  },
});
