/** The DNS door and the gateway's own resolver, sharing one upstream client and answer cache. */
import type { Logger } from 'pino';
import type { GatewayConfig, HostPort } from '../config.js';
import type { DoorContext, RunningDoor } from '../door.js';
import { CachedResolver } from './resolver.js';
import { DnsHandler } from './handler.js';
import { startDnsServer } from './server.js';

export type { Resolver } from './resolver.js';
export { CachedResolver, ResolveError } from './resolver.js';

export function createResolver(config: GatewayConfig, _log: Logger): CachedResolver {
  return new CachedResolver(config.upstreamDns, { minTtl: config.dnsMinTtl, maxTtl: config.dnsMaxTtl }, {
    cacheSize: config.dnsCacheSize,
    timeoutMs: config.dnsUpstreamTimeoutMs,
    failureTtl: config.dnsFailureTtl,
  });
}

/** `transports`: 'tcp' when DNS workers answer UDP on the same port (workers.ts). */
export async function startDnsDoor(ctx: DoorContext, at: HostPort, transports: 'both' | 'tcp' = 'both'): Promise<RunningDoor> {
  const log = ctx.log.child({ door: 'dns' });
  // Share the proxy doors' resolver (and so its cache) when it is ours; else keep one of our own.
  const own = !(ctx.resolver instanceof CachedResolver);
  const resolver = ctx.resolver instanceof CachedResolver ? ctx.resolver : createResolver(ctx.config, log);
  const handler = new DnsHandler({ config: ctx.config, engine: ctx.engine, gate: ctx.gate, resolver, log });
  if (ctx.config.upstreamDns.length === 0) log.warn({ event: 'dns_no_upstreams' }, 'no upstream DNS servers (--upstream-dns): allowed names will get SERVFAIL');
  const server = await startDnsServer(handler, at, log, {
    isKnownClient: (source) => ctx.engine.identifyByAddress(source).devboxId !== null,
    knownShare: ctx.dnsTcp,
    tenantOf: (source) => ctx.engine.identifyByAddress(source).devboxId ?? `src:${source}`,
    transports,
  });
  return {
    name: 'dns',
    address: server.address,
    close: async (graceMs: number) => {
      await server.close(graceMs);
      handler.close();
      if (own) resolver.close();
    },
    reload: (config) => handler.setRateLimit(config.dnsRateLimit),
  };
}

