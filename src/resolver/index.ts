/**
 * The gateway's resolver: one upstream client and one answer cache, shared by the proxy doors
 * (names they dial) and the DNS door (names devboxes ask for).
 */
import type { GatewayConfig } from '../config.js';
import { CachedResolver } from './resolver.js';

export type { Resolver } from './resolver.js';
export { CachedResolver, ResolveError } from './resolver.js';

/** The settings the resolver reads. */
export type ResolverSettings = Pick<GatewayConfig, 'upstreamDns' | 'dnsMinTtl' | 'dnsMaxTtl' | 'dnsCacheSize' | 'dnsUpstreamTimeoutMs' | 'dnsFailureTtl'>;

export function createResolver(config: ResolverSettings): CachedResolver {
  return new CachedResolver(
    config.upstreamDns,
    { minTtl: config.dnsMinTtl, maxTtl: config.dnsMaxTtl },
    {
      cacheSize: config.dnsCacheSize,
      timeoutMs: config.dnsUpstreamTimeoutMs,
      failureTtl: config.dnsFailureTtl,
    },
  );
}
