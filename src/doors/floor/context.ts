/** What every listener (door) is given, and what it hands back to the gateway. */
import type { Logger } from 'pino';
import type { GatewayConfig, HostPort } from '../../config.js';
import type { PolicyEngine } from '../../policy/engine.js';
import type { Gate } from './gate.js';
import type { ConnectionTracker } from './tracker.js';
import type { Resolver } from '../../resolver/resolver.js';
import type { SourceLimiter } from './source-limit.js';
import type { UpstreamPool } from './upstream-pool.js';
import type { FairShare } from './fair-share.js';
import type { CredentialSource } from '../../policy/credentials.js';

export interface DoorContext {
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
  /** Tokens, configs and secrets the agent gateway and MCP hub read per request (absent: they refuse every request). */
  credentials?: CredentialSource;
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

export interface RunningDoor {
  /** Stable name used in start-up lines and logs: api, http-proxy, socks5, dns, transparent-tls, transparent-http. */
  name: string;
  /** The address actually bound (port 0 resolved). */
  address: HostPort;
  /** Stops accepting, waits up to graceMs for open connections to finish, then closes them. */
  close(graceMs: number): Promise<void>;
  /** Takes the reloadable settings of a new configuration (SIGHUP), when the door has any. */
  reload?(config: GatewayConfig): void;
}
