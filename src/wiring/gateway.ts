/**
 * Assembles one gateway process: store → engine → gate → doors, with the admin API.
 * Used by `serve --workers 1` and by the tests, which start it on port 0; with
 * `--workers N` each worker process runs the same assembly without the API (workers.ts).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError, type GatewayConfig, type HostPort, type Reloadable, configChanges, flagOf, formatHostPort, reloadableOf, withReloaded } from '../config.js';
import { PolicyEngine } from '../policy/engine.js';
import { engineOptions, secretsKeyPath } from '../config.js';
import { Gate, allowLogEvery } from '../doors/floor/gate.js';
import { DenialRecorder, recorderOptions } from '../doors/floor/denial-events.js';
import { ConnectionTracker } from '../doors/floor/tracker.js';
import { SourceLimiter } from '../doors/floor/source-limit.js';
import { FairShare, fdBudget } from '../doors/floor/fair-share.js';
import { UpstreamPool } from '../doors/floor/upstream-pool.js';
import type { DoorContext, DoorServices, RunningDoor } from '../doors/floor/context.js';
import { DOORS, type DoorEntry } from '../doors/registry.js';
import type { CredentialSource } from '../policy/credentials.js';
import { storageFault } from '../store/index.js';
import { type PlaneStore, openPlaneStore } from '../store/open.js';
import { startApiThread } from '../api/thread.js';
import { registry } from '../metrics.js';
import { type RemoteLookup, createResolver } from '../resolver/index.js';
import { type Fleet, startFleet } from '../fleet/index.js';

export interface Gateway {
  config: GatewayConfig;
  /** The store the doors read (sqlite, or an in-memory copy following PostgreSQL's change feed). */
  store: PlaneStore;
  engine: PolicyEngine;
  doors: Record<string, HostPort>;
  /** Tokens created on first start (printed once by `serve`). */
  createdToken: string | null;
  /** Applies the reloadable settings of `next` (SIGHUP); returns the flags that changed. */
  reload(next: GatewayConfig): { applied: string[]; ignored: string[] };
  close(): Promise<void>;
}

/**
 * What a worker process (`--workers N`, see workers.ts) changes in the assembly: no API
 * process, no token set-up and no fleet publisher or follower (the primary has them), and its
 * engine handed over so the worker can pass on the addresses it learns and take the others'.
 */
export interface WorkerRole {
  onEngine(engine: PolicyEngine, store: PlaneStore): void;
  /** Resolves when the worker may open its doors (it has what the others learned so far). */
  ready(): Promise<void>;
  /** Addresses learned while answering, on their way to every other worker (the answer waits). */
  learnedShared(): Promise<void> | null;
  /** The host's one DNS answer cache, in the primary. */
  dnsLookup: RemoteLookup;
}

/** Opens the store and sets up the configured API tokens (the process that owns the store). */
export async function openOwnedStore(config: GatewayConfig, log: Logger): Promise<{ store: PlaneStore; createdToken: string | null }> {
  // The owner creates the secrets key (0600) on first start, as it creates the first API token.
  // A sidecar never does: it opens the control plane's sealed secrets with the control plane's key.
  const keyFile = resolve(secretsKeyPath(config));
  const keyExisted = existsSync(keyFile);
  const sidecar = config.follow !== null;
  const store = await openPlaneStore(config.db, { writable: true, log, secrets: { keyFile, create: !sidecar } });
  if (!keyExisted && !sidecar) log.info({ event: 'secrets_key_created', file: keyFile }, `created the secrets key ${keyFile} (mode 0600); back it up with the database: secrets cannot be read without it`);
  if (!keyExisted && sidecar) log.warn({ event: 'secrets_key_missing', file: keyFile }, `no secrets key at ${keyFile}: the agent gateway and MCP hub here apply no credential until the control plane's key is put there (--secrets-key-file)`);
  try {
    return { store, createdToken: await store.control.tokens.ensure(config.apiTokens) };
  } catch (e) {
    await store.close();
    const fault = storageFault(e);
    if (fault) throw new ConfigError('--db', `cannot write ${store.control.location}: ${fault.reason}`);
    throw e;
  }
}

export async function startGateway(config: GatewayConfig, log: Logger, worker?: WorkerRole): Promise<Gateway> {
  const { store, createdToken } = worker ? { store: await openPlaneStore(config.db, { log, secrets: { keyFile: secretsKeyPath(config), create: false } }), createdToken: null } : await openOwnedStore(config, log);
  const engine = new PolicyEngine(store.source, engineOptions(config));
  worker?.onEngine(engine, store);
  const fleet: Fleet | null = worker ? null : startFleet(config, store, log);
  const resolver = createResolver(config, worker?.dnsLookup);
  const gate = new Gate(engine, resolver, log);
  if (fleet) gate.refusing = () => fleet.refusing();
  const denials = new DenialRecorder((id) => engine.devbox(id)?.account_id, store.denials, recorderOptions(config), log);
  gate.denials = denials;
  gate.allowLogEvery = allowLogEvery(config.logAllowed);
  const tracker = new ConnectionTracker(engine, config.maxConnectionsPerDevbox);
  // Every cap below the open-file limit, so overload is refused, never EMFILE.
  const budget = fdBudget(config);
  log.info({ event: 'fd_budget', ...budget }, `open-file limit ${budget.nofile ?? 'unknown'}: up to ${budget.clients} client sockets, ${budget.upstreamIdle} idle upstream sockets, ${budget.dnsTcp} DNS TCP connections`);
  const tenantOf = (source: string) => engine.identifyByAddress(source).devboxId ?? `src:${source}`;
  // Every tunnel holds one client socket; allow as many again for idle keep-alives and handshakes.
  const clients = new FairShare('clients', budget.clients, Math.min(2 * config.maxConnectionsPerDevbox, budget.clients));
  const sourceLimit = new SourceLimiter(clients, tenantOf);
  const upstreamPool = new UpstreamPool(256, config.upstreamPoolIdleMs, budget.upstreamIdle, Math.min(config.upstreamPoolPerDevbox, budget.upstreamIdle));
  const dnsTcp = new FairShare('dns_tcp', budget.dnsTcp, Math.min(config.dnsTcpPerDevbox, budget.dnsTcp));
  const readiness = { listening: false };
  const services: DoorServices = {
    config,
    engine,
    gate,
    tracker,
    resolver,
    sourceLimit,
    upstreamPool,
    dnsTcp,
    log,
    readiness,
    learnedShared: worker?.learnedShared,
    credentials: credentialsOf(store),
  };

  const running: RunningDoor[] = [];
  const closeAll = async (graceMs: number) => {
    readiness.listening = false;
    await Promise.allSettled(running.map((d) => d.close(graceMs)));
    tracker.closeAll();
    upstreamPool.close();
    gate.flushLog();
    denials.close();
    tracker.dispose();
    await fleet?.close();
    engine.close();
    await store.close();
  };
  try {
    // The admin API runs in a thread of its own: no request to it takes time from the doors.
    const metrics = async () => [await registry.getMetricsAsJSON()];
    if (!worker) {
      running.push(await startApiThread({ config, store, engine, log, metrics, readiness, fleet: fleet ? () => ({ snapshot: fleet.follower(), unready: fleet.unready() }) : undefined }));
    } else await worker.ready();
    for (const entry of DOORS) {
      const at = config[entry.setting];
      if (at !== null) running.push(await startDoor(entry, services, at));
    }
  } catch (e) {
    await closeAll(0);
    throw e;
  }
  readiness.listening = true;
  fleet?.start();
  const doors: Record<string, HostPort> = {};
  for (const d of running) doors[d.name] = d.address;
  // A worker's doors are the gateway's: the primary writes the one "listening" line for them all.
  if (!worker) logListening(log, running);
  let closing: Promise<void> | null = null;
  /** The settings in force: as started, with the reloadable ones of each SIGHUP since. */
  let current = config;
  const reload = (next: GatewayConfig) => {
    const r = applyReload(current, next, { engine, log, owner: worker ? null : store });
    current = r.config;
    if (r.taken !== null) for (const d of running) d.reload?.(r.taken);
    return { applied: r.applied, ignored: r.ignored };
  };
  return {
    get config() {
      return current;
    },
    store,
    engine,
    doors,
    createdToken,
    reload,
    close: () => (closing ??= closeAll(config.shutdownGraceMs)),
  };
}

/** Starts one registry door, giving it only the parts of the gateway it names. */
export async function startDoor(entry: DoorEntry, services: DoorServices, at: HostPort): Promise<RunningDoor> {
  const given: Partial<Record<keyof DoorServices, unknown>> = {};
  for (const need of entry.needs) given[need] = services[need];
  if (entry.needs.includes('credentials') && given.credentials === undefined) {
    services.log.warn({ event: 'door_without_credentials', door: entry.name }, `${entry.name}: this store offers no credentials (tokens, configs, secrets): every request will be refused`);
  }
  // Holds exactly entry.needs, which is what entry.start takes (the registry's door() checks it).
  const door = await entry.start(given as DoorContext, at);
  if (door.name !== entry.name) {
    await door.close(0);
    throw new Error(`the door started for --${flagOf(entry.setting)} calls itself "${door.name}"; its registry line says "${entry.name}"`);
  }
  return door;
}

/** The store's credential source (tokens, configs, secrets) for the doors that name it; undefined when the store offers none. */
export function credentialsOf(store: PlaneStore): CredentialSource | undefined {
  return (store as PlaneStore & { credentials?: CredentialSource }).credentials;
}

/**
 * SIGHUP's one path, for every assembly (one process, a worker, the primary): the flags that
 * changed, the running settings after it (`current` with the reloadable ones of `next`; every
 * other setting stays as started), applied to the engine and the log level; the caller passes
 * `taken` on (to its doors, or its workers). `owner`: the store whose API tokens this process
 * sets up (not a worker's). `taken` is null when nothing reloadable changed.
 */
export function applyReload(current: GatewayConfig, next: GatewayConfig, parts: { engine: PolicyEngine; log: Logger; owner: PlaneStore | null }): { applied: string[]; ignored: string[]; config: GatewayConfig; taken: Reloadable | null } {
  const { reloadable, restart } = configChanges(current, next);
  if (reloadable.length === 0) return { applied: reloadable, ignored: restart, config: current, taken: null };
  const taken = reloadableOf(next);
  const config = withReloaded(current, taken);
  if (reloadable.includes('--api-token') && parts.owner !== null) {
    parts.owner.control.tokens.ensure(taken.apiTokens).catch((e: unknown) => parts.log.error({ err: e }, 'could not store the reloaded API tokens'));
  }
  parts.engine.reconfigure(engineOptions(config));
  parts.log.level = taken.logLevel;
  return { applied: reloadable, ignored: restart, config, taken };
}

/** The start-up line operators and tests read the bound addresses from. */
export function logListening(log: Logger, doors: ReadonlyArray<Pick<RunningDoor, 'name' | 'address'>>): void {
  log.info({ event: 'listening', listeners: Object.fromEntries(doors.map((d) => [d.name, formatHostPort(d.address)])) }, `egress-gateway listening: ${doors.map((d) => `${d.name} on ${formatHostPort(d.address)}`).join(', ')}`);
}
