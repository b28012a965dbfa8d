/**
 * Shared resources with a global cap and a fair share per tenant (a devbox, or the source
 * address of a client that is not one): accepted client sockets, idle upstream keep-alives,
 * DNS-over-TCP connections. The global caps are derived from the process's open-file limit
 * (RLIMIT_NOFILE, read at start) so the gateway refuses new work before it could hit EMFILE.
 *
 * A tenant may take a unit while it holds fewer than its static share; once the resource is
 * three-quarters used, only while it holds less than an equal split among the tenants now
 * holding it (so one tenant that filled the first three quarters is refused and the others
 * still get in). Every refusal is counted, by resource and by why (global, tenant).
 */
import { readFileSync } from 'node:fs';
import { Counter, Gauge } from 'prom-client';
import { registry } from '../../metrics.js';

/** The newest FairShare of each resource (the one a gateway in this process uses), read at scrape time. */
const current = new Map<string, FairShare>();

export const sharedInUse = new Gauge({
  name: 'egress_shared_in_use',
  help: 'Units of a shared resource in use (clients: accepted sockets; upstream_idle: pooled keep-alives; dns_tcp: DNS TCP connections)',
  labelNames: ['resource'] as const,
  registers: [registry],
  collect() {
    for (const [resource, share] of current) this.set({ resource }, share.size);
  },
});

export const sharedCapacity = new Gauge({
  name: 'egress_shared_capacity',
  help: 'Global cap of a shared resource (derived from RLIMIT_NOFILE unless set)',
  labelNames: ['resource'] as const,
  registers: [registry],
});

export const sharedRefusals = new Counter({
  name: 'egress_shared_refusals_total',
  help: 'Units of a shared resource refused, by resource and why (global: the cap; tenant: the tenant is over its share)',
  labelNames: ['resource', 'why'] as const,
  registers: [registry],
});

export class FairShare {
  private total = 0;
  private readonly held = new Map<string, number>();
  private readonly refusedGlobal: { inc(): void };
  private readonly refusedTenant: { inc(): void };
  /** Why the last take() was refused: the cap, or the tenant's share (for the refusal's words). */
  lastRefusal: 'global' | 'tenant' = 'global';

  constructor(
    readonly resource: string,
    /** Units in all. */
    readonly cap: number,
    /** Units one tenant may hold however idle the rest is. */
    readonly perTenant: number,
  ) {
    sharedCapacity.labels(resource).set(cap);
    // Read at scrape time (a labels() child hashes its labels on every set: twice per connection).
    current.set(resource, this);
    this.refusedGlobal = sharedRefusals.labels(resource, 'global');
    this.refusedTenant = sharedRefusals.labels(resource, 'tenant');
  }

  get size(): number {
    return this.total;
  }

  holding(tenant: string): number {
    return this.held.get(tenant) ?? 0;
  }

  /** Takes one unit for the tenant; false (counted) when the cap or its share is reached. */
  take(tenant: string): boolean {
    const mine = this.held.get(tenant) ?? 0;
    if (this.total >= this.cap) {
      this.refusedGlobal.inc();
      this.lastRefusal = 'global';
      return false;
    }
    const crowded = this.total * 4 >= this.cap * 3;
    const holders = this.held.size + (mine === 0 ? 1 : 0);
    if (mine >= this.perTenant || (crowded && mine >= Math.floor(this.cap / holders))) {
      this.refusedTenant.inc();
      this.lastRefusal = 'tenant';
      return false;
    }
    this.held.set(tenant, mine + 1);
    this.total++;
    return true;
  }

  release(tenant: string): void {
    const mine = this.held.get(tenant);
    if (mine === undefined) return;
    if (mine <= 1) this.held.delete(tenant);
    else this.held.set(tenant, mine - 1);
    this.total--;
  }
}

/** The soft RLIMIT_NOFILE of this process (Linux /proc), or null when it cannot be read. */
export function openFileLimit(): number | null {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (!m) return null;
    return m[1] === 'unlimited' ? null : Number(m[1]);
  } catch {
    return null;
  }
}

/** Descriptors kept out of every cap: the store, logs, listeners, DNS upstream sockets, IPC, the API's share. */
export const FD_HEADROOM = 128;

export interface FdBudget {
  /** RLIMIT_NOFILE as read at start (null: unknown, the configured caps apply as given). */
  nofile: number | null;
  /** Accepted client sockets across the TCP doors (each may hold one upstream socket too). */
  clients: number;
  /** Idle keep-alive sockets to origins. */
  upstreamIdle: number;
  /** DNS-over-TCP connections from devboxes. */
  dnsTcp: number;
}

export interface FdSettings {
  maxClientConnections: number;
  upstreamPoolMax: number;
  dnsTcpMax: number;
}

/**
 * Splits the open-file limit: headroom first, then an eighth each (at most as configured)
 * for pooled upstream sockets and DNS TCP, and half the rest for client sockets (each
 * client socket may have one upstream socket open beside it). A configured cap of 0 means
 * "derive it"; a configured cap above what the limit allows is lowered to it.
 */
export function fdBudget(s: FdSettings, nofile: number | null = openFileLimit()): FdBudget {
  const auto = (v: number, fallback: number) => (v > 0 ? v : fallback);
  if (nofile === null) {
    return { nofile, clients: auto(s.maxClientConnections, 16_384), upstreamIdle: auto(s.upstreamPoolMax, 1024), dnsTcp: auto(s.dnsTcpMax, 1024) };
  }
  const usable = Math.max(32, nofile - FD_HEADROOM);
  const upstreamIdle = Math.max(4, Math.min(auto(s.upstreamPoolMax, 1024), Math.floor(usable / 8)));
  const dnsTcp = Math.max(4, Math.min(auto(s.dnsTcpMax, 1024), Math.floor(usable / 8)));
  const clients = Math.max(8, Math.min(auto(s.maxClientConnections, Number.MAX_SAFE_INTEGER), Math.floor((usable - upstreamIdle - dnsTcp) / 2)));
  return { nofile, clients, upstreamIdle, dnsTcp };
}
