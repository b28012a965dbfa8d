/**
 * `--workers N` (N > 1): every door runs in N worker processes sharing each listener
 * through node's cluster module (TCP: each worker accepts on the shared socket,
 * NODE_CLUSTER_SCHED_POLICY=none unless set; UDP: one socket all workers read). This process, the primary, runs no door: it
 * owns the store's set-up, the API thread, the host's one DNS answer cache, and is the one
 * place the workers meet.
 *
 * Two channels to each worker (src/ipc.ts):
 * - control, node's IPC channel (the one cluster hands accepted connections on with
 *   NODE_CLUSTER_SCHED_POLICY=rr, and listening sockets on): start-up,
 *   `changed`/`synced`, `metrics?`, `reload`, `shutdown` — a few small messages;
 * - side, a socket pair of its own (fd 4 in the worker): DNS lookups and learned addresses,
 *   whatever their volume, so they never queue in front of a connection being handed out.
 *
 * - Decisions: every worker opens the same store and builds the same engine. A write
 *   through the API reaches the primary ('changed'), which re-reads the store and asks
 *   every worker to (each re-decides and cuts its open connections the change denies),
 *   and the API answers once every worker has ('synced').
 * - DNS answers: a worker's resolver asks the primary's ('dns?'), which holds the one answer
 *   cache of the host (bounded per host) and asks upstream once per name and TTL.
 * - DNS-learned addresses: a worker that learns addresses while answering sends them to the
 *   primary ('learn', batched and coalesced: learned-sharing.ts), which records them (for
 *   /v1/egress/check and for workers started later), passes them to every other worker the
 *   same way and answers ('learned') once they all have them; only then does the answer
 *   leave. A worker starting asks for everything learned so far ('seed?') before its doors
 *   listen.
 * - Per-devbox caps and rate limits: each worker enforces its share of
 *   --max-connections-per-devbox and --dns-rate-limit (workerShare: the shares add up to
 *   the setting), so the gateway never admits more than the setting and no connection
 *   pays an IPC round trip.
 * - Metrics: /metrics asks every worker ('metrics?') and sums their counters with the
 *   primary's (AggregatorRegistry).
 * - A worker that dies is started again in its slot (supervise()); SIGTERM drains every
 *   worker; SIGHUP's settings reach every worker ('reload').
 */
import cluster, { type Worker } from 'node:cluster';
import { createRequire } from 'node:module';
import { Socket } from 'node:net';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import { createLogger } from '../log.js';
import { ConfigError, type GatewayConfig, type HostPort, engineOptions } from '../config.js';
import { PolicyEngine } from '../policy/engine.js';
import { registry } from '../metrics.js';
import { startApiThread } from '../api/thread.js';
import type { RunningDoor } from '../doors/floor/context.js';
import type { PlaneStore } from '../store/open.js';
import { type Fleet, startFleet } from '../fleet/index.js';
import { type CachedResolver, type RemoteLookup, createResolver } from '../resolver/index.js';
import { type CacheEntry, type WireEntry, entryFromWire, entryToWire } from '../resolver/cache.js';
import { Channel, type Instance, type Supervisor, askAll, processLink, socketLink, supervise } from '../ipc.js';
import { type Gateway, type WorkerRole, applyReload, logListening, openOwnedStore } from './gateway.js';
import { type LearnedEntry, LearnedOutbox } from './learned-sharing.js';

export type { LearnedEntry } from './learned-sharing.js';

const SELF = fileURLToPath(import.meta.url);
const ENTRY = join(dirname(SELF), `worker-main${extname(SELF)}`);
/** The side channel's descriptor in a worker (stdio 4: after stdin, stdout, stderr and the IPC channel). */
const SIDE_FD = 4;

/** Node flags for a worker process: tsx's loader when running from the sources (the tests), else none. */
function childExecArgv(): string[] {
  if (extname(SELF) !== '.ts') return process.execArgv.filter((a) => !a.startsWith('--inspect'));
  if (process.execArgv.some((a) => a.includes('tsx'))) return process.execArgv;
  return ['--import', pathToFileURL(createRequire(SELF).resolve('tsx')).href];
}

/** Worker → primary, control channel. */
type FromWorker = { egw: 'listening'; doors: Array<{ name: string; address: HostPort }> } | { egw: 'failed'; message: string; setting: string | null; code: string | null } | { egw: 'synced'; re?: number } | { egw: 'metrics'; re?: number; metrics: unknown[] };

/** Primary → worker, control channel. */
type ToWorker = { egw: 'changed'; id: number } | { egw: 'metrics?'; id: number } | { egw: 'reload'; config: GatewayConfig } | { egw: 'shutdown'; graceMs: number };

/** Either way on the side channel: requests and their answers. */
type Side =
  | { egw: 'seed?'; id: number }
  | { egw: 'seed'; re?: number; entries: LearnedEntry[] }
  | { egw: 'learn'; id: number; entries: LearnedEntry[] }
  | { egw: 'learned'; re?: number }
  | { egw: 'dns?'; id: number; name: string; qtype: number; qclass: number; partition: string }
  | { egw: 'dns'; re?: number; entry: WireEntry | null };
// A 'dns' answer's entry travels with its bytes beside it (entryToWire).

/** How long the primary waits for every worker to answer (a worker that does not is not waited for longer). */
const ASK_MS = 1000;
/** How long a worker waits for the primary's DNS answer (the primary asks the upstreams in turn). */
const DNS_ASK_MS = 15_000;

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

/** One live worker process, seen from the primary. */
interface WorkerProcess extends Instance {
  slot: number;
  worker: Worker;
  control: Channel<ToWorker, FromWorker>;
  side: Channel<Side, Side>;
  /** Learned addresses on their way to this worker. */
  outbox: LearnedOutbox;
  doors: Array<{ name: string; address: HostPort }>;
}

/** The primary: store, engine (for the API's checks), the host's DNS cache, the API thread and N supervised workers. */
class Primary {
  private readonly slots: Array<Supervisor<WorkerProcess> | null>;
  private readonly readiness = { listening: false };
  /** Workers that asked for what was learned so far: every later address goes to them too (a starting one included). */
  private readonly peers = new Set<WorkerProcess>();
  private closing = false;
  private api: RunningDoor | null = null;
  private fleet: Fleet | null = null;

  constructor(
    /** The settings in force: as started, with the reloadable ones of each SIGHUP since (a worker started later gets these). */
    private config: GatewayConfig,
    private readonly log: Logger,
    private readonly store: PlaneStore,
    private readonly engine: PolicyEngine,
    private readonly resolver: CachedResolver,
  ) {
    this.slots = Array.from({ length: config.workers }, () => null);
  }

  /** Workers up now. */
  private live(): WorkerProcess[] {
    const out: WorkerProcess[] = [];
    for (const s of this.slots) {
      const w = s?.current();
      if (w?.control.open) out.push(w);
    }
    return out;
  }

  private updateReadiness(): void {
    this.readiness.listening = !this.closing && this.live().length > 0;
  }

  private late = (kind: string, waitedMs: number) => this.log.warn({ event: 'workers_slow', kind, waited_ms: waitedMs }, 'a worker did not answer in time; going on without it');

  /** Starts worker `slot`; resolves once its doors listen. */
  private startWorker(slot: number): Promise<WorkerProcess> {
    const n = this.config.workers;
    const w = cluster.fork({ EGRESS_WORKER_CONFIG: JSON.stringify(this.config), EGRESS_WORKER_SLOT: String(slot), EGRESS_WORKER_COUNT: String(n) });
    this.log.info({ event: 'worker_started', slot, pid: w.process.pid }, `worker ${slot} started (pid ${w.process.pid})`);
    const exited = new Promise<string>((r) => w.on('exit', (code, signal) => r(signal !== null ? `signal ${signal}` : `code ${code}`)));
    const sideSocket = w.process.stdio[SIDE_FD] as Socket;
    return new Promise((resolve, reject) => {
      const side = new Channel<Side, Side>(socketLink(sideSocket), (m) => this.onSide(wp, m), this.late);
      const control = new Channel<ToWorker, FromWorker>(
        processLink(w),
        (m) => {
          if (m.egw === 'listening') {
            wp.doors = m.doors;
            this.log.info({ event: 'worker_listening', slot, pid: w.process.pid }, `worker ${slot} listening (pid ${w.process.pid})`);
            resolve(wp);
            queueMicrotask(() => this.updateReadiness());
          } else if (m.egw === 'failed') {
            reject(m.setting !== null ? new ConfigError(m.setting, m.message.replace(`${m.setting}: `, '')) : Object.assign(new Error(m.message), { code: m.code ?? undefined }));
          }
        },
        this.late,
      );
      const wp: WorkerProcess = {
        slot,
        worker: w,
        control,
        side,
        outbox: new LearnedOutbox((entries) =>
          side.ask(
            (id) => ({ egw: 'learn', id, entries }),
            ASK_MS,
            undefined,
            () => undefined,
          ),
        ),
        doors: [],
        exited,
        // One still starting has nothing to drain (and ignores signals: the primary speaks for it).
        drain: (graceMs) => (wp.doors.length > 0 ? control.send({ egw: 'shutdown', graceMs }) : w.process.kill('SIGKILL')),
        kill: () => w.process.kill('SIGKILL'),
      };
      void exited.then((how) => {
        this.peers.delete(wp);
        this.updateReadiness();
        reject(new Error(`a worker exited while starting (${how})`));
      });
    });
  }

  private onSide(from: WorkerProcess, m: Side): void {
    switch (m.egw) {
      case 'seed?':
        // Everything learned so far, then every later address (the outbox keeps the order).
        this.peers.add(from);
        return from.side.reply(m, { egw: 'seed', entries: [...this.engine.learned.entries()] });
      case 'learn': {
        for (const [devbox, name, ip, expiresAt] of m.entries) this.engine.learned.learnUntil(devbox, name, [ip], expiresAt);
        const others = [...this.peers].filter((w) => w !== from && w.side.open);
        void Promise.all(others.map((w) => w.outbox.push(m.entries))).then(() => from.side.reply(m, { egw: 'learned' }));
        return;
      }
      case 'dns?': {
        const answer = (e: CacheEntry | null) => {
          if (e === null) return from.side.reply(m, { egw: 'dns', entry: null });
          const { w, bin } = entryToWire(e);
          from.side.reply(m, { egw: 'dns', entry: w }, bin);
        };
        try {
          const r = this.resolver.lookup(m.name, m.qtype, m.qclass, undefined, m.partition);
          if (r instanceof Promise) r.then(answer, () => answer(null));
          else answer(r);
        } catch {
          answer(null);
        }
      }
    }
  }

  private changed = async () => {
    await askAll<ToWorker, FromWorker, boolean>(
      this.live().map((w) => w.control),
      (id) => ({ egw: 'changed', id }),
      ASK_MS,
      () => true,
    );
  };

  async start(): Promise<Gateway> {
    const { config, log, store, engine } = this;
    // Each worker accepts on the shared listening socket itself: no connection waits for the
    // primary's event loop (it holds the host's DNS cache and passes learned addresses on).
    // Measured on one core (bench/RESULTS.md, footprint): the round-robin hop cost 28–42 % of
    // the CONNECT churn rate, and the kernel balanced the two workers evenly.
    // NODE_CLUSTER_SCHED_POLICY=rr brings node's round-robin back.
    if (process.env.NODE_CLUSTER_SCHED_POLICY === undefined) cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({ exec: ENTRY, execArgv: childExecArgv(), args: [], stdio: ['inherit', 'inherit', 'inherit', 'ipc', 'pipe'] });
    const started = await Promise.allSettled(
      this.slots.map((_, slot) =>
        supervise({
          name: `worker ${slot}`,
          event: 'worker_exit',
          log,
          start: () => this.startWorker(slot),
          restarted: () => this.updateReadiness(),
        }),
      ),
    );
    started.forEach((s, slot) => {
      if (s.status === 'fulfilled') this.slots[slot] = s.value;
    });
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    try {
      if (failed) throw failed.reason;
      this.fleet = startFleet(config, store, log, () => void this.changed());
      // The API last, as in one process: once it answers, every door does.
      const f = this.fleet;
      this.api = await startApiThread({
        config,
        store,
        engine,
        log,
        readiness: this.readiness,
        fleet: f ? () => ({ snapshot: f.follower(), unready: f.unready() }) : undefined,
        metrics: async () => [
          await registry.getMetricsAsJSON(),
          ...(await askAll<ToWorker, FromWorker, unknown[]>(
            this.live().map((w) => w.control),
            (id) => ({ egw: 'metrics?', id }),
            ASK_MS,
            (m) => (m.egw === 'metrics' ? m.metrics : []),
          )),
        ],
        synced: this.changed,
      });
    } catch (e) {
      await this.finish(0);
      throw e;
    }
    this.updateReadiness();
    this.fleet?.start();
    const workers = this.live();
    const all = [this.api, ...workers[0]!.doors];
    log.info({ event: 'workers', workers: config.workers, pids: workers.map((w) => w.worker.process.pid) }, `every door runs in ${config.workers} worker processes`);
    logListening(log, all);
    let closed: Promise<void> | null = null;
    const primary = this;
    return {
      get config() {
        return primary.config;
      },
      store,
      engine,
      createdToken: null,
      doors: Object.fromEntries(all.map((d) => [d.name, d.address])),
      reload: (next) => this.reload(next),
      close: () => (closed ??= this.finish(config.shutdownGraceMs)),
    };
  }

  private reload(next: GatewayConfig): { applied: string[]; ignored: string[] } {
    const r = applyReload(this.config, next, { engine: this.engine, log: this.log, owner: this.store });
    this.config = r.config;
    if (r.taken !== null) for (const w of this.live()) w.control.send({ egw: 'reload', config: r.config });
    return { applied: r.applied, ignored: r.ignored };
  }

  private async finish(graceMs: number): Promise<void> {
    this.closing = true;
    this.readiness.listening = false;
    await Promise.allSettled([this.api?.close(graceMs), ...this.slots.map((s) => s?.stop(graceMs))]);
    await this.fleet?.close();
    this.resolver.close();
    this.engine.close();
    await this.store.close();
  }
}

/** The primary: store, engine (for the API's checks), the API thread and N workers. */
export async function startWorkers(config: GatewayConfig, log: Logger): Promise<Gateway> {
  const { store, createdToken } = await openOwnedStore(config, log);
  const engine = new PolicyEngine(store.source, engineOptions(config));
  const gw = await new Primary(config, log, store, engine, createResolver(config)).start();
  return { ...gw, createdToken };
}

/**
 * The worker side (worker-main.ts): the whole data plane, no API, reporting to the primary.
 * It is the WorkerRole startGateway() is given: the engine handed over, the seed awaited
 * before the doors listen, learned addresses passed on, DNS asked of the primary's cache.
 */
class WorkerSide implements WorkerRole {
  private engine: PolicyEngine | null = null;
  private store: PlaneStore | null = null;
  private gw: Gateway | null = null;
  private stopAsked = false;
  private reloadAsked: GatewayConfig | null = null;
  /** Addresses learned here since the last answer. */
  private fresh: LearnedEntry[] = [];
  /** Taking the others' addresses (those are not sent back). */
  private applying = false;
  private seeded: Promise<void> = Promise.resolve();
  private readonly control: Channel<FromWorker, ToWorker>;
  private readonly side: Channel<Side, Side>;
  private readonly toPrimary: LearnedOutbox;

  constructor(
    private readonly config: GatewayConfig,
    private readonly slot: number,
    private readonly n: number,
    private readonly log: Logger,
    private readonly flush: (ms: number) => Promise<void>,
  ) {
    this.control = new Channel<FromWorker, ToWorker>(processLink(process), (m) => this.onControl(m));
    const late = (kind: string, waitedMs: number) => log.warn({ event: 'primary_slow', kind, waited_ms: waitedMs }, 'the primary did not answer in time; going on');
    this.side = new Channel<Side, Side>(
      socketLink(new Socket({ fd: SIDE_FD, readable: true, writable: true })),
      (m) => {
        if (m.egw === 'learn') {
          this.take(m.entries);
          this.side.reply(m, { egw: 'learned' });
        }
      },
      late,
    );
    this.toPrimary = new LearnedOutbox((entries) =>
      this.side.ask(
        (id) => ({ egw: 'learn', id, entries }),
        ASK_MS,
        undefined,
        () => undefined,
      ),
    );
  }

  private share(config: GatewayConfig): GatewayConfig {
    return workerShare(config, this.slot, this.n);
  }

  private onControl(m: ToWorker): void {
    switch (m.egw) {
      case 'changed':
        return void (this.store?.refresh() ?? Promise.resolve()).then(() => this.control.reply(m, { egw: 'synced' }));
      case 'metrics?':
        return void registry.getMetricsAsJSON().then((metrics) => this.control.reply(m, { egw: 'metrics', metrics }));
      case 'reload':
        // One that arrives while this worker is starting is applied once it runs.
        if (this.gw !== null) this.gw.reload(this.share(m.config));
        else this.reloadAsked = m.config;
        return;
      case 'shutdown':
        if (this.gw !== null) this.stop();
        else this.stopAsked = true;
    }
  }

  private take(entries: LearnedEntry[]): void {
    this.applying = true;
    try {
      for (const [devbox, name, ip, expiresAt] of entries) this.engine?.learned.learnUntil(devbox, name, [ip], expiresAt);
    } finally {
      this.applying = false;
    }
  }

  private stop(): void {
    this.log.info({ event: 'worker_stopping', slot: this.slot }, `worker ${this.slot} stopping`);
    void (this.gw?.close() ?? Promise.resolve()).finally(() => this.flush(1000).finally(() => process.exit(0)));
  }

  // ── WorkerRole ──

  onEngine(e: PolicyEngine, s: PlaneStore): void {
    this.engine = e;
    this.store = s;
    e.learned.onLearn = (devbox, name, ip, expiresAt) => {
      if (!this.applying) this.fresh.push([devbox, name, ip, expiresAt]);
    };
    // What the other workers learned so far, before this one answers anybody.
    this.seeded = this.side
      .ask(
        (id) => ({ egw: 'seed?', id }),
        10_000,
        [] as LearnedEntry[],
        (m) => (m.egw === 'seed' ? m.entries : []),
      )
      .then((entries) => {
        this.take(entries);
        return s.refresh();
      });
  }

  ready(): Promise<void> {
    return this.seeded;
  }

  /** An arrow: the doors call it unbound (DoorContext.learnedShared). */
  learnedShared = (): Promise<void> | null => {
    if (this.fresh.length === 0) return null;
    const entries = this.fresh;
    this.fresh = [];
    return this.toPrimary.push(entries);
  };

  dnsLookup: RemoteLookup = async (name, qtype, qclass, partition) => {
    const e = await this.side.ask(
      (id) => ({ egw: 'dns?', id, name, qtype, qclass, partition }),
      DNS_ASK_MS,
      null,
      (m, bin) => (m.egw === 'dns' && m.entry !== null ? entryFromWire(m.entry, bin) : null),
    );
    if (e === null) throw new Error(`the primary did not answer for ${name}`);
    return e;
  };

  /** Runs the doors; tells the primary they listen, or why they could not start. */
  async run(): Promise<void> {
    try {
      const { startGateway } = await import('./gateway.js');
      this.gw = await startGateway(this.share(this.config), this.log, this);
      if (this.stopAsked) return this.stop();
      if (this.reloadAsked !== null) this.gw.reload(this.share(this.reloadAsked));
      this.control.send({ egw: 'listening', doors: Object.entries(this.gw.doors).map(([name, address]) => ({ name, address })) });
    } catch (e) {
      const cause = (e as { cause?: NodeJS.ErrnoException }).cause ?? (e as NodeJS.ErrnoException);
      this.control.send({ egw: 'failed', message: (e as Error).message, setting: e instanceof ConfigError ? e.setting : null, code: cause.code ?? null });
      this.log.error({ err: e }, `worker ${this.slot} failed to start`);
      setTimeout(() => process.exit(1), 100);
    }
  }
}

/** Entry of a worker process (worker-main.ts). */
export async function runWorker(): Promise<void> {
  const config = JSON.parse(process.env.EGRESS_WORKER_CONFIG ?? 'null') as GatewayConfig;
  const slot = Number(process.env.EGRESS_WORKER_SLOT);
  // Its own bounded writer (whole lines per write: several processes share stdout).
  const { log, flush } = createLogger(config.logLevel, { worker: slot, pid: process.pid }, undefined, config.logBufferBytes);
  const worker = new WorkerSide(config, slot, Number(process.env.EGRESS_WORKER_COUNT), log, flush);
  // The primary going away takes its workers with it; signals to the group (Ctrl-C, a
  // supervisor's SIGTERM or SIGHUP) are the primary's to act on, and it tells every worker.
  process.on('disconnect', () => process.exit(0));
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, () => {});
  process.stdout.on('error', () => {});
  process.stderr.on('error', () => {});
  await worker.run();
}
