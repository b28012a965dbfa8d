/**
 * The gateway's resolver: one upstream client and one answer cache, shared by the proxy doors
 * (names they dial) and the DNS door (names devboxes ask for).
 */
import type { GatewayConfig } from '../config.js';
import { CachedResolver, type RemoteLookup } from './resolver.js';

export type { RemoteLookup, Resolver } from './resolver.js';
export { CachedResolver, ResolveError } from './resolver.js';

/** The settings the resolver reads. */
export type ResolverSettings = Pick<GatewayConfig, 'upstreamDns' | 'dnsMinTtl' | 'dnsMaxTtl' | 'dnsCacheSize' | 'dnsUpstreamTimeoutMs' | 'dnsFailureTtl' | 'dnsCacheBytes' | 'dnsCacheBytesPerAccount' | 'dnsLearnPerAnswer'>;

/** `remote`: the host's cache in another process (a worker's, see wiring/workers.ts). */
export function createResolver(config: ResolverSettings, remote?: RemoteLookup): CachedResolver {
  return new CachedResolver(
    config.upstreamDns,
    { minTtl: config.dnsMinTtl, maxTtl: config.dnsMaxTtl },
    {
      cacheSize: config.dnsCacheSize,
      cacheBytes: { perPartition: config.dnsCacheBytesPerAccount, total: config.dnsCacheBytes },
      learnPerAnswer: config.dnsLearnPerAnswer,
      remote,
      timeoutMs: config.dnsUpstreamTimeoutMs,
      failureTtl: config.dnsFailureTtl,
    },
  );
}
