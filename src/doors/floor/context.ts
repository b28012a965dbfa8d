/**
 * What the gateway can hand a door, and what a door hands back. A door names the parts it uses
 * (its registry line's `needs`, src/doors/registry.ts) and is given only those: its start
 * function takes `DoorContext<'log' | 'gate' | …>`, so tsc shows what each door depends on.
 */
import type { Logger } from 'pino';
import type { GatewayConfig, HostPort, Reloadable } from '../../config.js';
import type { PolicyEngine } from '../../policy/engine.js';
import type { CredentialSource } from '../../policy/credentials.js';
import type { Gate } from './gate.js';
import type { ConnectionTracker } from './tracker.js';
import type { Resolver } from '../../resolver/resolver.js';
import type { SourceLimiter } from './source-limit.js';
import type { UpstreamPool } from './upstream-pool.js';
import type { FairShare } from './fair-share.js';

/** Everything a door may ask for. The wiring builds each part once and gives a door the parts it names. */
export interface DoorServices {
  config: GatewayConfig;
  engine: PolicyEngine;
  gate: Gate;
  tracker: ConnectionTracker;
  resolver: Resolver;
  /** Client sockets per source address, taken at accept by every TCP door. */
  sourceLimit: SourceLimiter;
  /** Idle keep-alive sockets to origins, shared by the HTTP doors (global cap, per-devbox share). */
  upstreamPool: UpstreamPool;
  /** DNS-over-TCP connections (global cap, per-devbox share). */
  dnsTcp: FairShare;
  log: Logger;
  /**
   * Tokens, gateway and MCP configs and secret values (the agent-gateway and MCP-hub doors), from
   * the store; undefined when the store offers none (such a door then refuses every request).
   */
  credentials: CredentialSource | undefined;
  /** Metrics of other processes of this gateway, to merge into /metrics (in-process API only). */
  workerMetrics?: () => Promise<unknown[][]>;
  /**
   * In a worker (`--workers N`): the addresses the DNS door learned while answering, on their
   * way to every other worker; the answer leaves once they all have them. Null: nothing pending.
   */
  learnedShared?: () => Promise<void> | null;
  /** Set by the gateway: every configured listener is up and not draining (GET /readyz). Absent: not tracked. */
  readiness?: { listening: boolean };
}

export type DoorNeed = keyof DoorServices;

/**
 * The settings `S` a door reads, as given at start: a SIGHUP reaches a door only through its
 * `RunningDoor.reload`, with the reloadable settings (config.ts RELOADABLE).
 */
export type DoorSettings<S extends keyof GatewayConfig> = Readonly<Pick<GatewayConfig, S>>;

/**
 * The parts `N` of the gateway a door (or a helper on the floor) is given, all of them by
 * default; with `config` among them, the settings `S` it reads of it.
 */
export type DoorContext<N extends DoorNeed = DoorNeed, S extends keyof GatewayConfig = keyof GatewayConfig> = Omit<Pick<DoorServices, N>, 'config'> & ('config' extends N ? { readonly config: DoorSettings<S> } : unknown);

export interface RunningDoor {
  /** Stable name used in start-up lines and logs: api, http-proxy, socks5, dns, transparent-tls, transparent-http. */
  name: string;
  /** The address actually bound (port 0 resolved). */
  address: HostPort;
  /** Stops accepting, waits up to graceMs for open connections to finish, then closes them. */
  close(graceMs: number): Promise<void>;
  /** Takes the settings a SIGHUP changed, when the door reads any of them (its other settings stay as started). */
  reload?(next: Reloadable): void;
}
