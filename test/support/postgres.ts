/**
 * A real PostgreSQL for the tests, from Debian's packages: initdb into a temporary folder
 * (owned by the `postgres` user when the tests run as root: initdb refuses root), started
 * with pg_ctl on a free loopback port, trust authentication on 127.0.0.1 only.
 * `sharedPostgres()` is one server for the whole vitest run: the first test file that asks
 * starts it (a lock file in the run's folder, test/support/global-setup.ts), the others use
 * it, and the run's teardown stops it; outside a vitest run it is one server per process. A
 * fresh database per test (`createDatabase()`, CREATE DATABASE is fast). A test that kills
 * PostgreSQL starts its own with `startPostgres()`.
 * A missing binary fails with one line naming the package; nothing is skipped.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, closeSync, existsSync, mkdtempSync, openSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll } from 'vitest';

function binDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0) throw new Error('PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql: install the Debian package `postgresql`');
  return join(root, versions[0]!, 'bin');
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const asRoot = process.getuid?.() === 0;

/** Runs a PostgreSQL binary as the postgres user (when root), synchronously. */
function run(bin: string, args: string[]): void {
  const cmd = asRoot ? 'runuser' : bin;
  const argv = asRoot ? ['-u', 'postgres', '--', bin, ...args] : args;
  const r = spawnSync(cmd, argv, { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`${bin} ${args.join(' ')} failed (${r.status}): ${r.stderr || r.stdout}`);
}

export interface PostgresServer {
  readonly port: number;
  /** Its folder (data, socket, log); '' for the run's shared server seen from another file. */
  readonly dir: string;
  /** postgres://postgres@127.0.0.1:PORT/NAME */
  url(database: string): string;
  /** A new empty database; returns its URL. */
  createDatabase(): Promise<string>;
  /** SIGKILL to the postmaster and every backend (no shutdown, no checkpoint). */
  kill9(): void;
  /** Starts it again (after kill9), waiting until it takes connections. */
  start(): Promise<void>;
  stop(): void;
}

async function createDatabase(url: (db: string) => string): Promise<string> {
  // Unique across the run's worker processes (a pid may come back for a later file).
  const name = `egw_${process.pid}_${randomBytes(4).toString('hex')}`;
  const c = new pg.Client({ connectionString: url('postgres') });
  await c.connect();
  try {
    await c.query(`CREATE DATABASE ${name}`);
  } finally {
    await c.end();
  }
  return url(name);
}

export async function startPostgres(settings: { maxConnections?: number } = {}): Promise<PostgresServer> {
  const bin = binDir();
  const dir = mkdtempSync(join(tmpdir(), 'egw-pg-'));
  const data = join(dir, 'data');
  if (asRoot) chownSync(dir, Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim()), Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim()));
  run(join(bin, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--no-sync']);
  const port = await freePort();
  const opts = [`-p ${port}`, `-k ${dir}`, `-c listen_addresses=127.0.0.1`, '-c fsync=off', '-c full_page_writes=off', '-c shared_buffers=16MB', `-c max_connections=${settings.maxConnections ?? 100}`, '-c log_min_messages=fatal'].join(' ');
  const url = (db: string) => `postgres://postgres@127.0.0.1:${port}/${db}`;
  let stopped = false;

  const waitReady = async () => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const c = new pg.Client({ connectionString: url('postgres'), connectionTimeoutMillis: 1000 });
      c.on('error', () => {});
      try {
        await c.connect();
        await c.query('SELECT 1');
        await c.end();
        return;
      } catch (e) {
        await c.end().catch(() => {});
        if (Date.now() > deadline) throw new Error(`PostgreSQL on port ${port} did not start: ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  const start = async () => {
    // A killed postmaster's backends may hold its shared memory for a moment: retry.
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        run(join(bin, 'pg_ctl'), ['start', '-w', '-t', '30', '-D', data, '-l', join(dir, 'log'), '-o', opts]);
        break;
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    await waitReady();
  };
  await start();

  const postmasterPid = (): number | null => {
    try {
      return Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    } catch {
      return null;
    }
  };
  /** The postmaster's children (its backends), from /proc. */
  const childrenOf = (pid: number): number[] =>
    readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .flatMap((p) => {
        try {
          const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
          const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
          return ppid === pid ? [Number(p)] : [];
        } catch {
          return [];
        }
      });

  const server: PostgresServer = {
    port,
    dir,
    url,
    createDatabase: () => createDatabase(url),
    kill9() {
      const pid = postmasterPid();
      if (pid === null) return;
      const kids = childrenOf(pid);
      for (const p of [pid, ...kids]) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          /* gone already */
        }
      }
    },
    start,
    stop() {
      if (stopped) return;
      stopped = true;
      try {
        run(join(bin, 'pg_ctl'), ['stop', '-m', 'immediate', '-w', '-D', data]);
      } catch {
        server.kill9();
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return server;
}

let shared: Promise<PostgresServer> | null = null;
/** This process started the shared server (outside a run): stop it when the file ends. */
let ownShared = false;

const LOCK = 'postgres.lock';
const INFO = 'postgres.json';

interface SharedInfo {
  port: number;
  dir: string;
  data: string;
  bin: string;
}

/** One server for the whole vitest run (or, outside one, for this process). */
export function sharedPostgres(): Promise<PostgresServer> {
  const runDir = process.env.EGW_TEST_RUN_DIR;
  if (!runDir) {
    ownShared = true;
    return (shared ??= startPostgres());
  }
  return (shared ??= runPostgres(runDir));
}

/** The run's server: started by the first file to ask (it takes the lock), awaited by the others. */
async function runPostgres(runDir: string): Promise<PostgresServer> {
  const info = join(runDir, INFO);
  let mine = false;
  try {
    closeSync(openSync(join(runDir, LOCK), 'wx'));
    mine = true;
  } catch {
    /* another file is starting it */
  }
  if (mine) {
    // Several files at once, each with gateways holding pools.
    const server = await startPostgres({ maxConnections: 300 });
    const { port } = server;
    const dir = server.dir;
    writeFileSync(`${info}.tmp`, JSON.stringify({ port, dir, data: join(dir, 'data'), bin: binDir() } satisfies SharedInfo));
    renameSync(`${info}.tmp`, info);
  }
  const deadline = Date.now() + 120_000;
  while (!existsSync(info)) {
    if (Date.now() > deadline) throw new Error(`the run's shared PostgreSQL did not start within 120 s (${info} missing; see the first file that used it)`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const { port } = JSON.parse(readFileSync(info, 'utf8')) as SharedInfo;
  const url = (db: string) => `postgres://postgres@127.0.0.1:${port}/${db}`;
  const notHere = () => {
    throw new Error("the run's shared PostgreSQL is not a test's to kill or stop: use startPostgres()");
  };
  return { port, dir: '', url, createDatabase: () => createDatabase(url), kill9: notHere, start: async () => notHere(), stop: () => {} };
}

/** Stops the run's shared server, if one was started (the run's teardown); returns problems found. */
export async function stopSharedPostgres(runDir: string): Promise<string[]> {
  const info = join(runDir, INFO);
  if (!existsSync(info)) {
    // Never started, or its start failed (that file failed, naming why).
    rmSync(join(runDir, LOCK), { force: true });
    return [];
  }
  const s = JSON.parse(readFileSync(info, 'utf8')) as SharedInfo;
  try {
    run(join(s.bin, 'pg_ctl'), ['stop', '-m', 'immediate', '-w', '-D', s.data]);
  } catch (e) {
    return [`the shared PostgreSQL did not stop: ${(e as Error).message}`];
  } finally {
    rmSync(s.dir, { recursive: true, force: true });
    rmSync(info, { force: true });
    rmSync(join(runDir, LOCK), { force: true });
  }
  return [];
}

try {
  afterAll(async () => {
    if (shared && ownShared) (await shared.catch(() => null))?.stop();
  });
} catch {
  // Imported outside a vitest run (bench/*.ts start the gateway through test/support/gateway.ts),
  // or by the run's global set-up: there is no test file to stop the server after.
}
