/**
 * The admin API in a process of its own, beside the data plane (the process whose doors
 * enforce; with --workers, one of several), so no API request, however large, takes time
 * from the doors' event loop, and the API's memory and descriptors are its own.
 *
 * The API process opens the same store (sqlite, WAL) and serves every route itself. What
 * it asks the data plane, over the IPC channel:
 * - after a write, `changed`: the data plane re-reads the store's change log at once (no
 *   poll) and answers `synced`, and only then does the API answer its client, so a write
 *   acknowledged is a write the doors enforce;
 * - `check`: the decision for /v1/egress/check, made by the doors' engine;
 * - `metrics?`: the data plane's metrics (every worker's, with --workers) for /metrics.
 * An API process that dies is started again on the same address.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import { createLogger } from '../log.js';
import { ConfigError, type GatewayConfig, type HostPort, secretsKeyPath } from '../config.js';
import type { RunningDoor } from '../doors/floor/context.js';
import type { PolicyEngine } from '../policy/engine.js';
import type { PlaneStore } from '../store/open.js';
import { ApiError } from './errors.js';
import { type CheckAnswer, type CheckQuestion, type DataPlane, type FleetHealth, decideCheck } from './plane.js';

const SELF = fileURLToPath(import.meta.url);
const ENTRY = join(dirname(SELF), `process-main${extname(SELF)}`);

/** API process → data plane. */
type FromApi =
  | { egw: 'api-listening'; address: HostPort }
  | { egw: 'api-failed'; message: string; setting: string | null }
  | { egw: 'changed'; id: number }
  | { egw: 'check'; id: number; q: CheckQuestion }
  | { egw: 'metrics?'; id: number }
  | { egw: 'listening?'; id: number }
  | { egw: 'fleet?'; id: number };

/** Data plane → API process. */
type ToApi =
  | { egw: 'synced'; id: number }
  | { egw: 'checked'; id: number; a: CheckAnswer | null }
  | { egw: 'metrics'; id: number; metrics: unknown[][] | null }
  | { egw: 'listening'; id: number; listening: boolean }
  | { egw: 'fleet'; id: number; fleet: FleetHealth | null }
  | { egw: 'shutdown'; graceMs: number };

export interface ApiProcessOptions {
  config: GatewayConfig;
  store: PlaneStore;
  engine: PolicyEngine;
  log: Logger;
  /** The data plane's metrics (with --workers, every worker's and the primary's). */
  metrics: () => Promise<unknown[][]>;
  /** Every door listening and none draining (for /readyz). */
  readiness: { listening: boolean };
  /** After the store is re-read here: until every other data-plane process (the workers) has it too. */
  synced?: () => Promise<void>;
  /** Fleet mode: the sidecar's snapshot for /healthz and /readyz. */
  fleet?: () => FleetHealth;
}

/**
 * How long the API process may take to listen before the gateway gives up. Generous: on a host
 * whose cores are oversubscribed (several gateways starting at once on 2 cores) loading the API
 * took over 30 s; the limit only bounds a child that hangs.
 */
const API_START_MS = 120_000;

/** Node flags for a child process: the TypeScript loader when running from sources (tests, `npm start`). */
export function childExecArgv(): string[] {
  if (extname(SELF) !== '.ts') return process.execArgv.filter((a) => !a.startsWith('--inspect'));
  if (process.execArgv.some((a) => a.includes('tsx'))) return process.execArgv;
  const loader = createRequire(SELF).resolve('tsx');
  return ['--import', pathToFileURL(loader).href];
}

/** Starts the API process on config.api and resolves once it listens. */
export async function startApiProcess(o: ApiProcessOptions): Promise<RunningDoor> {
  let at: HostPort = o.config.api;
  let child: ChildProcess | null = null;
  let closing = false;
  let quickExits = 0;

  const answer = (c: ChildProcess, m: ToApi) => {
    if (c.connected) c.send(m, undefined, undefined, () => {});
  };
  const onMessage = (c: ChildProcess) => (m: FromApi) => {
    if (m === null || typeof m !== 'object') return;
    if (m.egw === 'changed') {
      const done = () => answer(c, { egw: 'synced', id: m.id });
      const synced = o.synced;
      void o.store
        .refresh()
        .then(() => (synced ? synced() : undefined))
        .then(done, done);
    } else if (m.egw === 'check') {
      let a: CheckAnswer | null = null;
      try {
        a = decideCheck(o.engine, m.q);
      } catch (e) {
        o.log.error({ err: e }, 'egress check failed');
      }
      answer(c, { egw: 'checked', id: m.id, a });
    } else if (m.egw === 'fleet?') {
      answer(c, { egw: 'fleet', id: m.id, fleet: o.fleet?.() ?? null });
    } else if (m.egw === 'listening?') {
      answer(c, { egw: 'listening', id: m.id, listening: o.readiness.listening });
    } else if (m.egw === 'metrics?') {
      void o.metrics().then(
        (metrics) => answer(c, { egw: 'metrics', id: m.id, metrics }),
        (e: unknown) => {
          o.log.error({ err: e }, 'collecting metrics for the API process failed');
          answer(c, { egw: 'metrics', id: m.id, metrics: null });
        },
      );
    }
  };

  const spawn = (): Promise<HostPort> =>
    new Promise((resolve, reject) => {
      const born = Date.now();
      const c = fork(ENTRY, [], {
        execArgv: childExecArgv(),
        env: { ...process.env, EGRESS_API_PROCESS_CONFIG: JSON.stringify({ ...o.config, api: at }) },
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      child = c;
      let up = false;
      // Bounded, but generous: on a loaded host loading the API's modules (and, for a PostgreSQL
      // --db, connecting and migrating) has been seen to take over 30 s.
      const timer = setTimeout(() => {
        c.kill('SIGKILL');
        reject(new Error(`the API process did not start within ${API_START_MS / 1000} s`));
      }, API_START_MS);
      c.on('message', (m: FromApi) => {
        if (m?.egw === 'api-listening') {
          up = true;
          clearTimeout(timer);
          resolve(m.address);
        } else if (m?.egw === 'api-failed') {
          clearTimeout(timer);
          reject(m.setting !== null ? new ConfigError(m.setting, m.message.replace(`${m.setting}: `, '')) : new Error(m.message));
        } else onMessage(c)(m);
      });
      c.on('exit', (code, signal) => {
        clearTimeout(timer);
        if (!up) {
          reject(new Error(`the API process exited while starting (code ${code}, signal ${signal})`));
          return;
        }
        if (closing || child !== c) return;
        quickExits = Date.now() - born < 60_000 ? quickExits + 1 : 0;
        if (quickExits > 5) {
          o.log.error({ event: 'api_process_exit', code, signal }, 'the API process keeps exiting; not starting it again');
          return;
        }
        o.log.error({ event: 'api_process_exit', code, signal }, 'the API process exited; starting another');
        setTimeout(() => {
          if (!closing) spawn().catch((e: unknown) => o.log.error({ err: e }, 'the API process could not be started again'));
        }, 200).unref();
      });
    });

  at = await spawn();
  return {
    name: 'api',
    address: at,
    async close(graceMs: number) {
      closing = true;
      const c = child;
      if (c === null || c.exitCode !== null || c.signalCode !== null) return;
      const exited = new Promise<void>((r) => c.once('exit', () => r()));
      if (c.connected) answer(c, { egw: 'shutdown', graceMs });
      else c.kill('SIGTERM');
      const timer = setTimeout(() => c.kill('SIGKILL'), graceMs + 2000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** The API process side: opens the store, serves the API, asks the data plane over IPC. */
export async function runApiProcess(): Promise<void> {
  const config = JSON.parse(process.env.EGRESS_API_PROCESS_CONFIG ?? 'null') as GatewayConfig;
  const send = (m: FromApi) => process.send?.(m);
  // Its own bounded writer, like a worker's: a stalled or full stdout drops lines, never blocks.
  const { log, flush } = createLogger(config.logLevel, { api_process: process.pid }, undefined, config.logBufferBytes);
  let nextId = 1;
  const waiting = new Map<number, (m: ToApi) => void>();
  const ask = <T>(build: (id: number) => FromApi, read: (m: ToApi) => T, fallback: T, ms = 5000): Promise<T> =>
    new Promise((resolve) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        waiting.delete(id);
        resolve(fallback);
      }, ms);
      waiting.set(id, (m) => {
        clearTimeout(timer);
        waiting.delete(id);
        resolve(read(m));
      });
      send(build(id));
    });
  const plane: DataPlane = {
    check: async (q) => {
      const a = await ask(
        (id) => ({ egw: 'check', id, q }),
        (m) => (m as { a: CheckAnswer | null }).a,
        null,
      );
      if (a === null) throw new ApiError(503, 'service_unavailable', 'the data plane did not answer the check; try again');
      return a;
    },
    // No answer is a failed scrape (503), never a partial exposition: Prometheus would read the
    // data plane's counters as reset.
    metrics: async () => {
      const got = await ask(
        (id) => ({ egw: 'metrics?', id }),
        (m) => (m as { metrics: unknown[][] | null }).metrics,
        null,
        5000,
      );
      if (got === null) throw new ApiError(503, 'service_unavailable', 'the data plane did not answer for its metrics; try the next scrape');
      return got;
    },
    changed: () =>
      ask(
        (id) => ({ egw: 'changed', id }),
        () => undefined,
        undefined,
      ),
    listening: () =>
      ask(
        (id) => ({ egw: 'listening?', id }),
        (m) => (m as { listening: boolean }).listening,
        false,
        2000,
      ),
    ...(config.follow !== null || config.nats !== null
      ? {
          fleet: () =>
            ask(
              (id) => ({ egw: 'fleet?', id }),
              (m) => (m as { fleet: FleetHealth | null }).fleet,
              null,
              2000,
            ),
        }
      : {}),
  };
  let stop: ((graceMs: number) => Promise<void>) | null = null;
  process.on('message', (m: ToApi) => {
    if (m === null || typeof m !== 'object') return;
    if (m.egw === 'shutdown') void (stop?.(m.graceMs) ?? Promise.resolve()).finally(() => flush(1000).finally(() => process.exit(0)));
    else if ('id' in m) waiting.get(m.id)?.(m);
  });
  // The data plane going away takes its API with it; signals to the group (Ctrl-C) are the
  // data plane's to act on: it sends 'shutdown' once its doors drain.
  process.on('disconnect', () => process.exit(0));
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => {});
  try {
    const { openControlStore } = await import('../store/open.js');
    const { serveApi } = await import('./index.js');
    const store = await openControlStore(config.db, { secrets: { keyFile: secretsKeyPath(config), create: false } });
    const door = await serveApi({ config, log, plane }, store, config.api);
    stop = async (graceMs) => {
      await door.close(graceMs);
      await store.close();
    };
    send({ egw: 'api-listening', address: door.address });
  } catch (e) {
    send({ egw: 'api-failed', message: (e as Error).message, setting: e instanceof ConfigError ? e.setting : null });
    log.error({ err: e }, 'API process failed to start');
    setTimeout(() => process.exit(1), 100);
  }
}
