/**
 * `--workers N` (N > 1): every door runs in N worker processes sharing each listener
 * through node's cluster module (TCP: the primary accepts and hands connections out in
 * turn; UDP: one socket all workers read). This process, the primary, runs no door: it
 * owns the store's set-up and the API process, and is the one place the workers meet.
 *
 * - Decisions: every worker opens the same store and builds the same engine. A write
 *   through the API reaches the primary ('changed'), which re-reads the store and asks
 *   every worker to (each re-decides and cuts its open connections the change denies),
 *   and the API answers once every worker has ('synced').
 * - DNS-learned addresses: a worker that learns addresses while answering sends them
 *   ('learn'); the primary keeps them (for /v1/egress/check and for workers started
 *   later), passes them to every other worker and acknowledges ('learned') once they all
 *   have them; only then does the answer leave. A worker starting is sent everything
 *   learned so far before its doors listen.
 * - Per-devbox caps and rate limits: each worker enforces its share of
 *   --max-connections-per-devbox and --dns-rate-limit (workerShare: the shares add up to
 *   the setting), so the gateway never admits more than the setting and no connection
 *   pays an IPC round trip.
 * - Metrics: /metrics asks every worker ('metrics?') and sums their counters with the
 *   primary's (AggregatorRegistry).
 * - A worker that dies is started again in its slot; SIGTERM drains every worker;
 *   SIGHUP's settings reach every worker ('reload').
 */
import cluster, { type Worker } from 'node:cluster';
import { dirname, extname, join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import { createLogger } from '../log.js';
import { ConfigError, type GatewayConfig, type HostPort, RELOADABLE, configChanges, engineOptions } from '../config.js';
import { PolicyEngine } from '../policy/engine.js';
import { registry } from '../metrics.js';
import { startApiThread } from '../api/thread.js';
import type { RunningDoor } from '../doors/floor/context.js';
import type { PlaneStore } from '../store/open.js';
import { type Fleet, startFleet } from '../fleet/index.js';
import { type Gateway, logListening, openOwnedStore } from './gateway.js';

const SELF = fileURLToPath(import.meta.url);
const ENTRY = join(dirname(SELF), `worker-main${extname(SELF)}`);

/** Node flags for a worker process: tsx's loader when running from the sources (the tests), else none. */
function childExecArgv(): string[] {
  if (extname(SELF) !== '.ts') return process.execArgv.filter((a) => !a.startsWith('--inspect'));
  if (process.execArgv.some((a) => a.includes('tsx'))) return process.execArgv;
  return ['--import', pathToFileURL(createRequire(SELF).resolve('tsx')).href];
}

/** One learned address, as LearnedAddresses.learnUntil takes it. */
export type LearnedEntry = [devboxId: string, name: string, ip: string, expiresAt: number];

/** Worker → primary. */
export type FromWorker =
  | { egw: 'hello'; id: number }
  | { egw: 'listening'; doors: Array<{ name: string; address: HostPort }> }
  | { egw: 'failed'; message: string; setting: string | null; code: string | null }
  | { egw: 'learn'; id: number; entries: LearnedEntry[] }
  | { egw: 'learned'; id: number }
  | { egw: 'synced'; id: number }
  | { egw: 'metrics'; id: number; metrics: unknown[] };

/** Primary → worker. */
export type ToWorker =
  | { egw: 'seed'; id: number; entries: LearnedEntry[] }
  | { egw: 'learn'; id: number; entries: LearnedEntry[] }
  | { egw: 'learned'; id: number }
  | { egw: 'changed'; id: number }
  | { egw: 'metrics?'; id: number }
  | { egw: 'reload'; config: GatewayConfig }
  | { egw: 'shutdown'; graceMs: number };

/** How long the primary waits for every worker to answer (a worker that does not is not waited for longer). */
const ASK_MS = 1000;

/**
 * Worker `slot`'s part of a per-devbox limit: the parts of N workers add up to the
 * setting (never below 1: a limit below the worker count is exceeded by the difference).
 */
export function workerShare(config: GatewayConfig, slot: number, n: number): GatewayConfig {
  const part = (total: number) => Math.max(1, Math.floor(total / n) + (slot < total % n ? 1 : 0));
  return {
    ...config,
    maxConnectionsPerDevbox: part(config.maxConnectionsPerDevbox),
    dnsRateLimit: config.dnsRateLimit === 0 ? 0 : part(config.dnsRateLimit),
  };
}

interface Asking {
  left: Set<Worker>;
  got: unknown[];
  done: (got: unknown[]) => void;
}

/** The primary: store, engine (for the API's checks), the API process and N workers. */
export async function startWorkers(config: GatewayConfig, log: Logger): Promise<Gateway> {
  const n = config.workers;
  const { store, createdToken } = await openOwnedStore(config, log);
  const engine = new PolicyEngine(store.source, engineOptions(config));
  /** Slot → its live worker; `peers`: workers that take changes and learned addresses. */
  const slots = new Map<number, Worker>();
  const peers = new Set<Worker>();
  const listening = new Set<Worker>();
  const readiness = { listening: false };
  let closing = false;
  let quickExits = 0;
  let nextId = 1;
  const asking = new Map<number, Asking>();
  let lastSlowLine = 0;
  let doors: Array<{ name: string; address: HostPort }> | null = null;
  let started: { ok: () => void; fail: (e: Error) => void } | null = null;

  const slotOf = (w: Worker) => [...slots].find(([, x]) => x === w)?.[0] ?? -1;
  const send = (w: Worker, m: ToWorker) => {
    if (w.isConnected()) w.send(m, undefined, undefined, () => {});
  };
  /** Sends to every worker in `to` and resolves with their answers (all, or those in by ASK_MS). */
  const askAll = (to: Iterable<Worker>, build: (id: number) => ToWorker): Promise<unknown[]> =>
    new Promise((resolve) => {
      const left = new Set([...to].filter((w) => w.isConnected()));
      if (left.size === 0) return resolve([]);
      const id = nextId++;
      const finish = (got: unknown[]) => {
        clearTimeout(timer);
        asking.delete(id);
        resolve(got);
      };
      const timer = setTimeout(() => {
        if (Date.now() - lastSlowLine >= 1000) {
          lastSlowLine = Date.now();
          log.warn({ event: 'workers_slow', waited_ms: ASK_MS, missing: [...left].map((w) => w.process.pid) }, 'workers did not answer in time; going on without them');
        }
        finish(entry.got);
      }, ASK_MS);
      const entry: Asking = { left, got: [], done: finish };
      asking.set(id, entry);
      for (const w of left) send(w, build(id));
    });
  const answered = (w: Worker, id: number, payload?: unknown) => {
    const a = asking.get(id);
    if (a === undefined || !a.left.delete(w)) return;
    if (payload !== undefined) a.got.push(payload);
    if (a.left.size === 0) a.done(a.got);
  };
  const forgetWorker = (w: Worker) => {
    for (const [id, a] of asking) if (a.left.has(w)) answered(w, id);
    peers.delete(w);
    listening.delete(w);
    readiness.listening = !closing && listening.size > 0;
  };

  const onMessage = (w: Worker, m: FromWorker) => {
    if (m === null || typeof m !== 'object') return;
    switch (m.egw) {
      case 'hello': {
        // Everything learned so far, then every later address (the channel keeps the order).
        peers.add(w);
        send(w, { egw: 'seed', id: m.id, entries: [...engine.learned.entries()] });
        return;
      }
      case 'listening':
        log.info({ event: 'worker_listening', slot: slotOf(w), pid: w.process.pid }, `worker ${slotOf(w)} listening (pid ${w.process.pid})`);
        listening.add(w);
        readiness.listening = !closing;
        doors ??= m.doors;
        if (listening.size === n) started?.ok();
        return;
      case 'failed': {
        const err = m.setting !== null ? new ConfigError(m.setting, m.message.replace(`${m.setting}: `, '')) : Object.assign(new Error(m.message), { code: m.code ?? undefined });
        if (started !== null) started.fail(err);
        else log.error({ event: 'worker_failed', err: m.message }, 'a worker could not start');
        return;
      }
      case 'learn': {
        for (const [devbox, name, ip, expiresAt] of m.entries) engine.learned.learnUntil(devbox, name, [ip], expiresAt);
        const others = [...peers].filter((p) => p !== w);
        void askAll(others, (id) => ({ egw: 'learn', id, entries: m.entries })).then(() => send(w, { egw: 'learned', id: m.id }));
        return;
      }
      case 'learned':
      case 'synced':
        return answered(w, m.id);
      case 'metrics':
        return answered(w, m.id, m.metrics);
    }
  };

  cluster.setupPrimary({ exec: ENTRY, execArgv: childExecArgv(), args: [], silent: false });
  const spawn = (slot: number) => {
    const w = cluster.fork({ EGRESS_WORKER_CONFIG: JSON.stringify(config), EGRESS_WORKER_SLOT: String(slot), EGRESS_WORKER_COUNT: String(n) });
    const born = Date.now();
    slots.set(slot, w);
    log.info({ event: 'worker_started', slot, pid: w.process.pid }, `worker ${slot} started (pid ${w.process.pid})`);
    w.on('message', (m: FromWorker) => onMessage(w, m));
    w.on('exit', (code, signal) => {
      forgetWorker(w);
      if (slots.get(slot) === w) slots.delete(slot);
      if (closing) return;
      if (started !== null) {
        started.fail(new Error(`a worker exited while starting (code ${code}, signal ${signal})`));
        return;
      }
      quickExits = Date.now() - born < 60_000 ? quickExits + 1 : 0;
      if (quickExits > 5) {
        log.error({ event: 'worker_exit', slot, code, signal, workers: slots.size }, 'workers keep exiting; not starting more');
        return;
      }
      log.error({ event: 'worker_exit', slot, pid: w.process.pid, code, signal }, `worker ${slot} exited; starting another`);
      setTimeout(() => {
        if (!closing) spawn(slot);
      }, 200).unref();
    });
  };

  const stopWorkers = async (graceMs: number) => {
    closing = true;
    readiness.listening = false;
    const all = [...slots.values()];
    const exits = all.map(
      (w) =>
        new Promise<void>((r) => {
          if (w.isDead()) return r();
          w.once('exit', () => r());
          // One still starting has nothing to drain (and ignores signals: the primary speaks for it).
          if (listening.has(w)) send(w, { egw: 'shutdown', graceMs });
          else w.process.kill('SIGKILL');
        }),
    );
    const timer = setTimeout(() => {
      for (const w of all) if (!w.isDead()) w.process.kill('SIGKILL');
    }, graceMs + 2000);
    await Promise.all(exits);
    clearTimeout(timer);
  };

  let api: RunningDoor | null = null;
  // Fleet mode's publisher or follower runs here, once; a follower's applied update reaches
  // every worker as a write through the API does.
  let fleet: Fleet | null = null;
  const finish = async (graceMs: number) => {
    await Promise.allSettled([api?.close(graceMs), stopWorkers(graceMs)]);
    await fleet?.close();
    engine.close();
    await store.close();
  };
  try {
    await new Promise<void>((ok, fail) => {
      const timer = setTimeout(() => fail(new Error('the workers did not start within 180 s')), 180_000);
      started = {
        ok: () => {
          clearTimeout(timer);
          ok();
        },
        fail: (e) => {
          clearTimeout(timer);
          fail(e);
        },
      };
      for (let slot = 0; slot < n; slot++) spawn(slot);
    });
    started = null;
    fleet = startFleet(config, store, log, () => void askAll(peers, (id) => ({ egw: 'changed', id })));
    // The API last, as in one process: once it answers, every door does.
    const f = fleet;
    api = await startApiThread({
      config,
      store,
      engine,
      log,
      readiness,
      fleet: f ? () => ({ snapshot: f.follower(), unready: f.unready() }) : undefined,
      metrics: async () => [await registry.getMetricsAsJSON(), ...((await askAll(listening, (id) => ({ egw: 'metrics?', id }))) as unknown[][])],
      synced: async () => {
        await askAll(peers, (id) => ({ egw: 'changed', id }));
      },
    });
  } catch (e) {
    started = null;
    await finish(0);
    throw e;
  }
  fleet?.start();
  const all = [api, ...doors!];
  log.info({ event: 'workers', workers: n, pids: [...slots.values()].map((w) => w.process.pid) }, `every door runs in ${n} worker processes`);
  logListening(log, all);
  let closed: Promise<void> | null = null;
  return {
    config,
    store,
    engine,
    createdToken,
    doors: Object.fromEntries(all.map((d) => [d.name, d.address])),
    reload(next) {
      const { reloadable, restart } = configChanges(config, next);
      if (reloadable.length === 0) return { applied: reloadable, ignored: restart };
      if (reloadable.includes('--api-token')) {
        store.control.tokens.ensure(next.apiTokens).catch((e: unknown) => log.error({ err: e }, 'could not store the reloaded API tokens'));
      }
      engine.reconfigure(engineOptions(next));
      log.level = next.logLevel;
      const live = config as unknown as Record<string, unknown>;
      for (const k of RELOADABLE) live[k] = next[k];
      for (const w of slots.values()) send(w, { egw: 'reload', config: next });
      return { applied: reloadable, ignored: restart };
    },
    close: () => (closed ??= finish(config.shutdownGraceMs)),
  };
}

/** The worker side (worker-main.ts): the whole data plane, no API, reporting to the primary. */
export async function runWorker(): Promise<void> {
  const config = JSON.parse(process.env.EGRESS_WORKER_CONFIG ?? 'null') as GatewayConfig;
  const slot = Number(process.env.EGRESS_WORKER_SLOT);
  const n = Number(process.env.EGRESS_WORKER_COUNT);
  const send = (m: FromWorker) => process.send?.(m);
  // Its own bounded writer (whole lines per write: several processes share stdout).
  const { log, flush } = createLogger(config.logLevel, { worker: slot, pid: process.pid }, undefined, config.logBufferBytes);
  let nextId = 1;
  const waiting = new Map<number, () => void>();
  let lastSlowLine = 0;
  /** Sends to the primary and resolves on its answer with the same id (or after ASK_MS). */
  const ask = (build: (id: number) => FromWorker, ms = ASK_MS): Promise<void> =>
    new Promise((resolve) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        waiting.delete(id);
        if (Date.now() - lastSlowLine >= 1000) {
          lastSlowLine = Date.now();
          log.warn({ event: 'primary_slow', waited_ms: ms }, 'the primary did not answer in time; going on');
        }
        resolve();
      }, ms);
      waiting.set(id, () => {
        clearTimeout(timer);
        waiting.delete(id);
        resolve();
      });
      send(build(id));
    });

  let engine: PolicyEngine | null = null;
  let store: PlaneStore | null = null;
  let gw: Gateway | null = null;
  let stopAsked: number | null = null;
  let reloadAsked: GatewayConfig | null = null;
  /** Addresses learned here since the last answer; `applying`: taking the others' (not sent back). */
  let batch: LearnedEntry[] = [];
  let applying = false;
  const take = (entries: LearnedEntry[]) => {
    applying = true;
    try {
      for (const [devbox, name, ip, expiresAt] of entries) engine?.learned.learnUntil(devbox, name, [ip], expiresAt);
    } finally {
      applying = false;
    }
  };
  const stop = () => {
    log.info({ event: 'worker_stopping', slot }, `worker ${slot} stopping`);
    void (gw?.close() ?? Promise.resolve()).finally(() => flush(1000).finally(() => process.exit(0)));
  };
  process.on('message', (m: ToWorker) => {
    if (m === null || typeof m !== 'object') return;
    switch (m.egw) {
      case 'seed':
        take(m.entries);
        return waiting.get(m.id)?.();
      case 'learn':
        take(m.entries);
        return void send({ egw: 'learned', id: m.id });
      case 'learned':
        return waiting.get(m.id)?.();
      case 'changed': {
        const id = m.id;
        return void (store?.refresh() ?? Promise.resolve()).then(() => send({ egw: 'synced', id }));
      }
      case 'metrics?':
        return void registry.getMetricsAsJSON().then((metrics) => send({ egw: 'metrics', id: m.id, metrics }));
      case 'reload':
        // One that arrives while this worker is starting is applied once it runs.
        if (gw !== null) gw.reload(workerShare(m.config, slot, n));
        else reloadAsked = m.config;
        return;
      case 'shutdown':
        if (gw !== null) stop();
        else stopAsked = m.graceMs;
    }
  });
  // The primary going away takes its workers with it; signals to the group (Ctrl-C, a
  // supervisor's SIGTERM or SIGHUP) are the primary's to act on, and it tells every worker.
  process.on('disconnect', () => process.exit(0));
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, () => {});
  process.stdout.on('error', () => {});
  process.stderr.on('error', () => {});
  let hello: Promise<void> = Promise.resolve();
  try {
    const { startGateway } = await import('./gateway.js');
    gw = await startGateway(workerShare(config, slot, n), log, {
      onEngine(e, s) {
        engine = e;
        store = s;
        e.learned.onLearn = (devbox, name, ip, expiresAt) => {
          if (!applying) batch.push([devbox, name, ip, expiresAt]);
        };
        // What the other workers learned so far, before this one answers anybody.
        hello = ask((id) => ({ egw: 'hello', id }), 10_000).then(() => s.refresh());
      },
      learnedShared() {
        if (batch.length === 0) return null;
        const entries = batch;
        batch = [];
        return ask((id) => ({ egw: 'learn', id, entries }));
      },
      ready: () => hello,
    });
    if (stopAsked !== null) return stop();
    if (reloadAsked !== null) gw.reload(workerShare(reloadAsked, slot, n));
    send({ egw: 'listening', doors: Object.entries(gw.doors).map(([name, address]) => ({ name, address })) });
  } catch (e) {
    const cause = (e as { cause?: NodeJS.ErrnoException }).cause ?? (e as NodeJS.ErrnoException);
    send({ egw: 'failed', message: (e as Error).message, setting: e instanceof ConfigError ? e.setting : null, code: cause.code ?? null });
    log.error({ err: e }, `worker ${slot} failed to start`);
    setTimeout(() => process.exit(1), 100);
  }
}
