/**
 * DNS workers (`--dns-workers N`): N more processes answer DNS over UDP on the --dns port,
 * sharing one socket through node's cluster module, so the door uses more than one core
 * (per datagram, the door's cost is mostly the kernel's, paid once per process). The main
 * process keeps DNS over TCP and everything else.
 *
 * Each worker opens the same store (policies and devboxes: the shared truth, re-read when
 * the main process says something changed), decides with its own engine and keeps its own
 * answer cache. What is not shared is sent to the main process: every address a worker
 * learns for a devbox (its message is written before the answer goes out, and the main
 * process re-decides an IP literal once more before denying it, see Gate.admitNow), and its
 * metrics on request, merged into /metrics. A worker that dies is started again.
 */
import cluster, { type Worker } from 'node:cluster';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { createLogger } from '../log.js';
import type { GatewayConfig, HostPort } from '../config.js';
import type { PolicyEngine } from '../policy/engine.js';

const ENTRY = join(dirname(fileURLToPath(import.meta.url)), `dns-worker-main${extname(fileURLToPath(import.meta.url))}`);

/** Messages between the main process and its DNS workers. */
export type WorkerMessage =
  | { egw: 'listening'; port: number }
  | { egw: 'learn'; devbox: string; name: string; ip: string; expiresAt: number }
  | { egw: 'metrics'; id: number; metrics: unknown[] }
  | { egw: 'synced'; id: number }
  | { egw: 'failed'; message: string; code: string | null };

export type MainMessage =
  | { egw: 'changed'; id?: number }
  | { egw: 'metrics?'; id: number }
  | { egw: 'shutdown'; graceMs: number }
  | { egw: 'reload'; config: GatewayConfig };

export interface DnsWorkers {
  /** The UDP port the workers answer on (the main process serves TCP on the same one). */
  port: number;
  metrics(): Promise<unknown[][]>;
  /** Has every live worker re-read the store now; resolves when all have (or after 1 s). */
  sync(): Promise<void>;
  /** Passes the reloadable settings of a new configuration on (SIGHUP). */
  reload(config: GatewayConfig): void;
  close(graceMs: number): Promise<void>;
}

/**
 * Starts the workers on `at` (a real port: the main process has bound TCP there first);
 * resolves once the first has its UDP socket. If one cannot start, all are stopped and the
 * error (with its errno code) is thrown.
 */
export async function startDnsWorkers(config: GatewayConfig, at: HostPort, engine: PolicyEngine, log: Logger): Promise<DnsWorkers> {
  const n = config.dnsWorkers;
  const workers = new Set<Worker>();
  /** Workers past start-up (they listen for 'shutdown'; one still starting is sent SIGTERM). */
  const ready = new Set<Worker>();
  let closing = false;
  let nextId = 1;
  const waiting = new Map<number, { got: unknown[][]; left: number; done: (m: unknown[][]) => void }>();
  const syncs = new Map<number, () => void>();
  let firstPort: ((p: number) => void) | null = null;
  let firstFail: ((e: Error) => void) | null = null;
  const portKnown = new Promise<number>((resolve, reject) => {
    firstPort = resolve;
    firstFail = reject;
    setTimeout(() => reject(new Error('no DNS worker came up within 30 s')), 30_000).unref();
  });
  /** Exits of workers that had run less than a minute: past 5 in a row, stop restarting. */
  let quickExits = 0;

  cluster.setupPrimary({ exec: ENTRY, execArgv: process.execArgv, args: [], silent: false });
  const spawn = (): void => {
    const w = cluster.fork({ EGRESS_DNS_WORKER_CONFIG: JSON.stringify(config), EGRESS_DNS_WORKER_AT: JSON.stringify(at) });
    const born = Date.now();
    workers.add(w);
    w.on('message', (m: WorkerMessage) => {
      if (m === null || typeof m !== 'object') return;
      if (m.egw === 'learn') engine.learned.learnUntil(m.devbox, m.name, [m.ip], m.expiresAt);
      else if (m.egw === 'listening') {
        ready.add(w);
        firstPort?.(m.port);
      }
      else if (m.egw === 'failed') {
        closing = true;
        for (const other of workers) other.process.kill('SIGKILL');
        firstFail?.(Object.assign(new Error(m.message), { code: m.code ?? undefined }));
      }
      else if (m.egw === 'synced') syncs.get(m.id)?.();
      else if (m.egw === 'metrics') {
        const wait = waiting.get(m.id);
        if (wait) {
          wait.got.push(m.metrics);
          if (--wait.left === 0) wait.done(wait.got);
        }
      }
    });
    w.on('exit', (code, signal) => {
      workers.delete(w);
      ready.delete(w);
      if (closing) return;
      quickExits = Date.now() - born < 60_000 ? quickExits + 1 : 0;
      if (quickExits > 5) {
        log.error({ event: 'dns_worker_exit', code, signal, workers: workers.size }, 'DNS workers keep exiting; not starting more');
        return;
      }
      log.error({ event: 'dns_worker_exit', code, signal }, 'a DNS worker exited; starting another');
      setTimeout(() => {
        if (!closing) spawn();
      }, 200).unref();
    });
  };
  for (let i = 0; i < n; i++) spawn();
  const port = await portKnown;
  log.info({ event: 'dns_workers', workers: n, port }, `DNS over UDP on ${at.host}:${port} is answered by ${n} worker processes; this process serves DNS over TCP`);
  const unsubscribe = engine.onChange(() => {
    for (const w of workers) w.send({ egw: 'changed' } satisfies MainMessage, undefined, undefined, () => {});
  });

  return {
    port,
    sync: () =>
      new Promise<void>((resolve) => {
        const live = [...ready].filter((w) => w.isConnected());
        if (live.length === 0) return resolve();
        const id = nextId++;
        let left = live.length;
        const finish = () => {
          clearTimeout(timer);
          syncs.delete(id);
          resolve();
        };
        const timer = setTimeout(finish, 1000);
        syncs.set(id, () => {
          if (--left === 0) finish();
        });
        for (const w of live) w.send({ egw: 'changed', id } satisfies MainMessage, undefined, undefined, () => {});
      }),
    metrics: () =>
      new Promise((resolve) => {
        const live = [...workers].filter((w) => w.isConnected());
        if (live.length === 0) return resolve([]);
        const id = nextId++;
        const entry = { got: [] as unknown[][], left: live.length, done: (m: unknown[][]) => finish(m) };
        const timer = setTimeout(() => finish(entry.got), 1000);
        const finish = (m: unknown[][]) => {
          clearTimeout(timer);
          waiting.delete(id);
          resolve(m);
        };
        waiting.set(id, entry);
        for (const w of live) w.send({ egw: 'metrics?', id } satisfies MainMessage, undefined, undefined, () => {});
      }),
    reload: (next) => {
      for (const w of workers) w.send({ egw: 'reload', config: next } satisfies MainMessage, undefined, undefined, () => {});
    },
    close: async (graceMs) => {
      closing = true;
      unsubscribe();
      const exits = [...workers].map((w) => new Promise<void>((r) => {
        if (!w.isConnected() && w.isDead()) return r();
        w.once('exit', () => r());
        if (ready.has(w)) w.send({ egw: 'shutdown', graceMs } satisfies MainMessage, undefined, undefined, () => {});
        else w.process.kill('SIGTERM');
      }));
      const timer = setTimeout(() => {
        for (const w of workers) w.process.kill('SIGKILL');
      }, graceMs + 2000);
      await Promise.all(exits);
      clearTimeout(timer);
    },
  };
}

/** The worker side: the DNS door over UDP only, reporting to the main process. */
export async function runDnsWorker(): Promise<void> {
  const config = JSON.parse(process.env.EGRESS_DNS_WORKER_CONFIG ?? 'null') as GatewayConfig;
  const at = JSON.parse(process.env.EGRESS_DNS_WORKER_AT ?? 'null') as HostPort;
  const send = (m: WorkerMessage) => process.send?.(m);
  // Its own bounded writer (whole lines per write: several processes share stdout).
  const { log, flush } = createLogger(config.logLevel, { dns_worker: process.pid }, undefined, config.logBufferBytes);
  // Listening from the first moment: a shutdown can arrive while this worker is still starting.
  let running: { onMessage(m: MainMessage): void; stop(graceMs: number): Promise<void> } | null = null;
  let stopAsked: number | null = null;
  const stop = (graceMs: number) => {
    log.info({ event: 'dns_worker_stopping' }, 'DNS worker stopping');
    void (running?.stop(graceMs) ?? Promise.resolve()).finally(() => flush(1000).finally(() => process.exit(0)));
  };
  process.on('message', (m: MainMessage) => {
    if (m === null || typeof m !== 'object') return;
    if (m.egw === 'shutdown') {
      if (running !== null) stop(m.graceMs);
      else stopAsked = m.graceMs;
    } else running?.onMessage(m);
  });
  // The main process going away takes its workers with it.
  process.on('disconnect', () => process.exit(0));
  try {
    running = await startWorkerDoor(config, at, log, send);
    if (stopAsked !== null) return stop(stopAsked);
    send({ egw: 'listening', port: at.port });
  } catch (e) {
    const cause = (e as { cause?: NodeJS.ErrnoException }).cause ?? (e as NodeJS.ErrnoException);
    send({ egw: 'failed', message: (e as Error).message, code: cause.code ?? null });
    log.error({ err: e }, 'DNS worker failed to start');
    process.exitCode = 1;
    setTimeout(() => process.exit(1), 100);
  }
}

async function startWorkerDoor(config: GatewayConfig, at: HostPort, log: Logger, send: (m: WorkerMessage) => void) {
  const { openPlaneStore } = await import('../store/open.js');
  const { PolicyEngine } = await import('../policy/engine.js');
  const { engineOptions } = await import('../config.js');
  const { Gate } = await import('../doors/floor/gate.js');
  const { createResolver } = await import('../resolver/index.js');
  const { DnsHandler } = await import('../doors/dns/handler.js');
  const { startDnsServer } = await import('../doors/dns/server.js');
  const { registry } = await import('../metrics.js');
  const store = await openPlaneStore(config.db, { log, connections: 2 });
  const engine = new PolicyEngine(store.source, engineOptions(config));
  // Written before the answer is sent (the handler learns, then the server sends).
  engine.learned.onLearn = (devbox, name, ip, expiresAt) => send({ egw: 'learn', devbox, name, ip, expiresAt });
  const dnsLog = log.child({ door: 'dns' });
  const resolver = createResolver(config);
  const gate = new Gate(engine, resolver, dnsLog);
  const { DenialRecorder, recorderOptions } = await import('../doors/floor/denial-events.js');
  const denials = new DenialRecorder((id) => engine.devbox(id)?.account_id, store.denials, recorderOptions(config), dnsLog);
  gate.denials = denials;
  const handler = new DnsHandler({ config, engine, gate, resolver, log: dnsLog });
  const server = await startDnsServer(handler, at, dnsLog, { transports: 'udp' });
  return {
    onMessage(m: MainMessage): void {
      if (m.egw === 'changed') {
        const id = m.id;
        void store.refresh().then(() => {
          if (id !== undefined) send({ egw: 'synced', id });
        });
      } else if (m.egw === 'reload') {
        engine.reconfigure(engineOptions(m.config));
        handler.setRateLimit(m.config.dnsRateLimit);
        log.level = m.config.logLevel;
      }
      else if (m.egw === 'metrics?') void registry.getMetricsAsJSON().then((metrics) => send({ egw: 'metrics', id: m.id, metrics }));
    },
    async stop(graceMs: number): Promise<void> {
      await server.close(graceMs);
      handler.close();
      gate.flushLog();
      denials.close();
      resolver.close();
      engine.close();
      await store.close();
    },
  };
}
