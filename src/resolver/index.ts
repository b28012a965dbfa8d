/**
 * The gateway's resolver: one upstream client and one answer cache, shared by the proxy doors
 * (names they dial) and the DNS door (names devboxes ask for).
 */
import type { GatewayConfig } from '../config.js';
import { CachedResolver } from './resolver.js';

export type { Resolver } from './resolver.js';
export { CachedResolver, ResolveError } from './resolver.js';

export function createResolver(config: GatewayConfig): CachedResolver {
  return new CachedResolver(
    config.upstreamDns,
    { minTtl: config.dnsMinTtl, maxTtl: config.dnsMaxTtl },
    {
      cacheSize: config.dnsCacheSize,
      cacheBytes: { perPartition: config.dnsCacheBytesPerAccount, total: config.dnsCacheBytes },
      learnPerAnswer: config.dnsLearnPerAnswer,
      timeoutMs: config.dnsUpstreamTimeoutMs,
      failureTtl: config.dnsFailureTtl,
    },
  );
}
