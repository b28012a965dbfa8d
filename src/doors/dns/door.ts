/** The DNS door: answers devboxes' queries through the gateway's resolver (shared with the proxies). */
import type { HostPort } from '../../config.js';
import type { DoorContext, RunningDoor } from '../floor/context.js';

/** What the DNS door uses of the gateway: no HTTP pool, tracker or client-socket limit of the TCP proxies. */
export type DnsDoorContext = DoorContext<'config' | 'engine' | 'gate' | 'resolver' | 'dnsTcp' | 'log' | 'learnedShared', keyof ResolverSettings | 'dnsDenyRcode' | 'dnsLearnGrace' | 'dnsRateLimit' | 'logAllowed'>;
import { CachedResolver, type ResolverSettings, createResolver } from '../../resolver/index.js';
import { DnsHandler } from './handler.js';
import { startDnsServer } from './server.js';

export async function startDnsDoor(ctx: DnsDoorContext, at: HostPort): Promise<RunningDoor> {
  const log = ctx.log.child({ door: 'dns' });
  // Share the proxy doors' resolver (and so its cache) when it is ours; else keep one of our own.
  const own = !(ctx.resolver instanceof CachedResolver);
  const resolver = ctx.resolver instanceof CachedResolver ? ctx.resolver : createResolver(ctx.config);
  const handler = new DnsHandler({ config: ctx.config, engine: ctx.engine, gate: ctx.gate, resolver, log, learnedShared: ctx.learnedShared });
  if (ctx.config.upstreamDns.length === 0) log.warn({ event: 'dns_no_upstreams' }, 'no upstream DNS servers (--upstream-dns): allowed names will get SERVFAIL');
  const server = await startDnsServer(handler, at, log, {
    isKnownClient: (source) => ctx.engine.identifyByAddress(source).devboxId !== null,
    knownShare: ctx.dnsTcp,
    tenantOf: (source) => ctx.engine.identifyByAddress(source).devboxId ?? `src:${source}`,
  });
  return {
    name: 'dns',
    address: server.address,
    close: async (graceMs: number) => {
      await server.close(graceMs);
      handler.close();
      if (own) resolver.close();
    },
    reload: (next) => handler.setRateLimit(next.dnsRateLimit),
  };
}
