/**
 * The admin API in a thread of its own, beside the data plane (the process whose doors
 * enforce, or with --workers the primary), so no API request, however large, takes time from
 * the doors' event loop: the thread has its own event loop and heap (bounded: past
 * API_HEAP_MB the thread is stopped and started again, the doors go on). A thread, not a
 * process: it costs about half the memory of a second Node process and starts faster
 * (docs/operations.md, "Processes and cores").
 *
 * The API thread opens the same store and serves every route itself. What it asks the data
 * plane, over the thread's message port (src/ipc.ts):
 * - after a write, `changed`: the data plane re-reads the store's change log at once (no
 *   poll) and answers `synced`, and only then does the API answer its client, so a write
 *   acknowledged is a write the doors enforce;
 * - `check`: the decision for /v1/egress/check, made by the doors' engine;
 * - `metrics?`: the data plane's metrics (every worker's, with --workers) for /metrics.
 * An API thread that stops is started again on the same address (supervise()).
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import { createLogger } from '../log.js';
import { ConfigError, type GatewayConfig, type HostPort, secretsKeyPath } from '../config.js';
import { Channel, type Instance, portLink, supervise } from '../ipc.js';
import type { RunningDoor } from '../doors/floor/context.js';
import type { PolicyEngine } from '../policy/engine.js';
import type { PlaneStore } from '../store/open.js';
import { ApiError } from './errors.js';
import { type CheckAnswer, type CheckQuestion, type DataPlane, type FleetHealth, decideCheck } from './plane.js';

const SELF = fileURLToPath(import.meta.url);
const ENTRY = join(dirname(SELF), `thread-main${extname(SELF)}`);

/** API thread → data plane. */
type FromApi =
  | { egw: 'api-listening'; address: HostPort }
  | { egw: 'api-failed'; message: string; setting: string | null }
  | { egw: 'changed'; id: number }
  | { egw: 'check'; id: number; q: CheckQuestion }
  | { egw: 'metrics?'; id: number }
  | { egw: 'listening?'; id: number }
  | { egw: 'fleet?'; id: number };

/** Data plane → API thread (answers carry the request's id as `re`). */
type ToApi =
  | { egw: 'synced'; re?: number }
  | { egw: 'checked'; re?: number; a: CheckAnswer | null }
  | { egw: 'metrics'; re?: number; metrics: unknown[][] | null }
  | { egw: 'listening'; re?: number; listening: boolean }
  | { egw: 'fleet'; re?: number; fleet: FleetHealth | null }
  | { egw: 'shutdown'; graceMs: number };

export interface ApiThreadOptions {
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
 * How long the API thread may take to listen before the gateway gives up. Generous: on a host
 * whose cores are oversubscribed (several gateways starting at once on 2 cores) loading the API
 * took over 30 s; the limit only bounds a thread that hangs.
 */
const API_START_MS = 120_000;
/** The API thread's heap: past it the thread is stopped (ERR_WORKER_OUT_OF_MEMORY) and started again. */
const API_HEAP_MB = 1024;

/** The thread, from the sources (tests) through tsx's loader registered in the thread, else the build. */
function newThread(config: GatewayConfig): Worker {
  const opts = {
    workerData: { config },
    // A small young generation: the API is not on the hot path, its memory is.
    resourceLimits: { maxOldGenerationSizeMb: API_HEAP_MB, maxYoungGenerationSizeMb: 8 },
    stdout: false,
    stderr: false,
  };
  if (extname(SELF) !== '.ts') return new Worker(ENTRY, opts);
  const boot = `import('tsx/esm/api').then((t) => { t.register(); return import(${JSON.stringify(pathToFileURL(ENTRY).href)}); })`;
  return new Worker(boot, { ...opts, eval: true });
}

/** Starts the API thread on config.api and resolves once it listens. */
export async function startApiThread(o: ApiThreadOptions): Promise<RunningDoor> {
  let at: HostPort = o.config.api;

  const serve = (ch: Channel<ToApi, FromApi>, m: FromApi) => {
    switch (m.egw) {
      case 'changed': {
        const done = () => ch.reply(m, { egw: 'synced' });
        const synced = o.synced;
        void o.store
          .refresh()
          .then(() => (synced ? synced() : undefined))
          .then(done, done);
        return;
      }
      case 'check': {
        let a: CheckAnswer | null = null;
        try {
          a = decideCheck(o.engine, m.q);
        } catch (e) {
          o.log.error({ err: e }, 'egress check failed');
        }
        return ch.reply(m, { egw: 'checked', a });
      }
      case 'fleet?':
        return ch.reply(m, { egw: 'fleet', fleet: o.fleet?.() ?? null });
      case 'listening?':
        return ch.reply(m, { egw: 'listening', listening: o.readiness.listening });
      case 'metrics?':
        void o.metrics().then(
          (metrics) => ch.reply(m, { egw: 'metrics', metrics }),
          (e: unknown) => {
            o.log.error({ err: e }, 'collecting metrics for the API failed');
            ch.reply(m, { egw: 'metrics', metrics: null });
          },
        );
    }
  };

  const start = (): Promise<Instance & { address: HostPort }> =>
    new Promise((resolve, reject) => {
      const t = newThread({ ...o.config, api: at });
      let up = false;
      const exited = new Promise<string>((r) => t.once('exit', (code) => r(`code ${code}`)));
      t.on('error', (e) => o.log.error({ event: 'api_thread_error', err: e }, 'the API thread failed'));
      const timer = setTimeout(() => {
        void t.terminate();
        reject(new Error(`the API did not start within ${API_START_MS / 1000} s`));
      }, API_START_MS);
      const ch = new Channel<ToApi, FromApi>(portLink(t), (m) => {
        if (m.egw === 'api-listening') {
          up = true;
          clearTimeout(timer);
          at = m.address;
          resolve({ address: m.address, exited, drain: (graceMs) => ch.send({ egw: 'shutdown', graceMs }), kill: () => void t.terminate() });
        } else if (m.egw === 'api-failed') {
          clearTimeout(timer);
          reject(m.setting !== null ? new ConfigError(m.setting, m.message.replace(`${m.setting}: `, '')) : new Error(m.message));
        } else serve(ch, m);
      });
      void exited.then((how) => {
        clearTimeout(timer);
        if (!up) reject(new Error(`the API thread stopped while starting (${how})`));
      });
    });

  const sup = await supervise({ name: 'the API thread', event: 'api_thread_exit', log: o.log, start });
  return {
    name: 'api',
    address: at,
    close: (graceMs: number) => sup.stop(graceMs),
  };
}

/** The API thread's side: opens the store, serves the API, asks the data plane over its port. */
export async function runApiThread(): Promise<void> {
  if (isMainThread || parentPort === null) throw new Error('the API thread runs in a worker thread');
  const port = parentPort;
  const config = (workerData as { config: GatewayConfig }).config;
  // Its own bounded writer: a stalled or full stdout drops lines, never blocks.
  const { log, flush } = createLogger(config.logLevel, { api_thread: true }, undefined, config.logBufferBytes);
  let stop: ((graceMs: number) => Promise<void>) | null = null;
  const ch = new Channel<FromApi, ToApi>(portLink(port, 'close'), (m) => {
    if (m.egw === 'shutdown') void (stop?.(m.graceMs) ?? Promise.resolve()).finally(() => flush(1000).finally(() => port.close()));
  });
  const unavailable = (what: string) => new ApiError(503, 'service_unavailable', what);
  const plane: DataPlane = {
    check: async (q) => {
      const a = await ch.ask(
        (id) => ({ egw: 'check', id, q }),
        5000,
        null,
        (m) => (m.egw === 'checked' ? m.a : null),
      );
      if (a === null) throw unavailable('the data plane did not answer the check; try again');
      return a;
    },
    // No answer is a failed scrape (503), never a partial exposition: Prometheus would read the
    // data plane's counters as reset.
    metrics: async () => {
      const got = await ch.ask(
        (id) => ({ egw: 'metrics?', id }),
        5000,
        null,
        (m) => (m.egw === 'metrics' ? m.metrics : null),
      );
      if (got === null) throw unavailable('the data plane did not answer for its metrics; try the next scrape');
      return got;
    },
    changed: () =>
      ch.ask(
        (id) => ({ egw: 'changed', id }),
        5000,
        undefined,
        () => undefined,
      ),
    listening: () =>
      ch.ask(
        (id) => ({ egw: 'listening?', id }),
        2000,
        false,
        (m) => m.egw === 'listening' && m.listening,
      ),
    ...(config.follow !== null || config.nats !== null
      ? {
          fleet: () =>
            ch.ask(
              (id) => ({ egw: 'fleet?', id }),
              2000,
              null,
              (m) => (m.egw === 'fleet' ? m.fleet : null),
            ),
        }
      : {}),
  };
  try {
    const { openControlStore } = await import('../store/open.js');
    const { serveApi } = await import('./index.js');
    const store = await openControlStore(config.db, { secrets: { keyFile: secretsKeyPath(config), create: false } });
    const door = await serveApi({ config, log, plane }, store, config.api);
    stop = async (graceMs) => {
      await door.close(graceMs);
      await store.close();
    };
    ch.send({ egw: 'api-listening', address: door.address });
  } catch (e) {
    ch.send({ egw: 'api-failed', message: (e as Error).message, setting: e instanceof ConfigError ? e.setting : null });
    log.error({ err: e }, 'the API failed to start');
    await flush(1000);
    port.close();
  }
}
