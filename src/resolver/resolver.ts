/**
 * How the gateway itself turns a name into addresses (for the proxy doors): through the
 * configured upstream DNS servers, never the host's stub resolver, and through the same
 * answer cache as the DNS door, so the DNS door and the proxy doors see the same answers.
 */
import { LRUCache } from 'lru-cache';
import type { HostPort } from '../config.js';
import { AnswerCache, type CacheBytes, type CacheEntry, type FailureKind, type TtlBounds, cacheKey, clockMs, failureEntry, failureOfRcode, prepareAnswer } from './cache.js';
import { UpstreamClient, UpstreamError, type UpstreamOptions } from './upstream.js';
import { CLASS_IN, RCODE, T } from './wire.js';
import { dnsMetrics } from './metrics.js';

export class ResolveError extends Error {
  constructor(
    readonly code: 'NXDOMAIN' | 'NODATA' | 'SERVFAIL' | 'TIMEOUT',
    readonly host: string,
  ) {
    super(`${code} resolving ${host}`);
  }
}

export interface Resolver {
  /**
   * IPv4 addresses first, then IPv6; rejects with ResolveError. `partition`: the account
   * asking (answers are cached per account, see AnswerCache).
   */
  resolve(name: string, partition?: string): Promise<string[]>;
  /**
   * Optional synchronous fast path: what resolve() would answer when both the A and AAAA
   * answers are cached (and not empty), else undefined (then call resolve()).
   */
  resolveCached?(name: string, partition?: string): string[] | undefined;
}

/** The lookup of another process's resolver (the primary's, with --workers N); rejects as lookup() does. */
export type RemoteLookup = (name: string, qtype: number, qclass: number, partition: string) => Promise<CacheEntry>;

/** Seconds a resolution failure is cached unless configured (--dns-failure-ttl). */
export const DEFAULT_FAILURE_TTL = 5;

const PLAIN_NAME = /^(?=.{1,253}$)([a-z0-9_-]{1,63})(\.[a-z0-9_-]{1,63})*$/;

/** A name the door may put on the wire: lower-case LDH/underscore labels, within DNS limits. */
export function isPlainName(name: string): boolean {
  return PLAIN_NAME.test(name);
}

function countHit(e: CacheEntry | undefined): void {
  if (e === undefined) return;
  dnsMetrics.cacheLookup(true);
  if (e.failure !== undefined) dnsMetrics.failureHit(e.failure);
}

/** The cached upstream path the DNS door and the proxy doors share. */
export class CachedResolver implements Resolver {
  readonly cache: AnswerCache;
  readonly upstream: UpstreamClient;
  private readonly inflight = new Map<string, Promise<CacheEntry>>();
  /**
   * Resolver-only memory of NODATA answers that carried no SOA (the shared answer cache
   * does not keep those, RFC 2308 §5), kept for the configured minimum TTL so an IPv4-only
   * name does not cost an upstream AAAA query on every connection. key → expiry (ms).
   */
  private readonly nodata = new LRUCache<string, number>({ max: 10_000 });

  /** Seconds a resolution failure is kept (RFC 9520: 1 s to 5 min). */
  readonly failureTtl: number;
  /**
   * With --workers N: the host's one answer cache and upstream client, in the primary. Every
   * lookup goes there (this process then keeps no answer of its own), so a name answered to
   * one worker is not asked upstream again by another, and the cache's bound is per host.
   */
  private readonly remote: RemoteLookup | null;
  /** Addresses of one answer kept in its entry (learned, dialled); the answer served has them all. */
  readonly learnPerAnswer: number;

  constructor(
    upstreams: readonly HostPort[],
    readonly bounds: TtlBounds,
    opts: UpstreamOptions & { cacheSize?: number; cacheBytes?: CacheBytes; failureTtl?: number; learnPerAnswer?: number; remote?: RemoteLookup } = {},
  ) {
    this.remote = opts.remote ?? null;
    this.cache = new AnswerCache(bounds, opts.cacheSize, opts.cacheBytes);
    this.learnPerAnswer = opts.learnPerAnswer ?? Number.MAX_SAFE_INTEGER;
    this.upstream = new UpstreamClient(upstreams, opts);
    this.failureTtl = opts.failureTtl ?? DEFAULT_FAILURE_TTL;
  }

  /**
   * The answer for name/type/class, from the cache or the upstreams (then cached for its
   * TTL). Concurrent misses for one key share one upstream query. Rejects with
   * UpstreamError when no upstream answered, or ResolveError('SERVFAIL') for an answer
   * that cannot be used.
   */
  lookup(name: string, qtype: number, qclass: number, now = clockMs(), partition = ''): CacheEntry | Promise<CacheEntry> {
    if (this.remote !== null) return this.remote(name, qtype, qclass, partition);
    const key = cacheKey(name, qtype, qclass);
    const hit = this.cache.get(key, now, partition);
    dnsMetrics.cacheLookup(hit !== undefined);
    if (hit !== undefined) {
      if (hit.failure !== undefined) dnsMetrics.failureHit(hit.failure);
      return hit;
    }
    return this.fetch(key, name, qtype, qclass, partition);
  }

  /**
   * Upstream only (the caller already missed the cache). A resolution failure (no answer,
   * SERVFAIL, REFUSED, an unusable answer) resolves to a failure entry, cached in the
   * asking account's partition for failureTtl seconds. Rejects only when the client is
   * closed or has no upstreams.
   */
  fetch(key: string, name: string, qtype: number, qclass: number, partition = ''): Promise<CacheEntry> {
    const flight = `${partition}\u0000${key}`;
    let p = this.inflight.get(flight);
    if (p === undefined) {
      p = this.upstream.query(name, qtype, qclass).then(
        (a) => {
          const now = clockMs();
          const failed = failureOfRcode(a.bytes[3]! & 0xf);
          if (failed !== null) return this.failed(key, name, qtype, qclass, failed, partition);
          const prepared = prepareAnswer(a.bytes, this.bounds, now, this.learnPerAnswer);
          if (prepared === null) return this.failed(key, name, qtype, qclass, 'malformed', partition);
          this.cache.set(key, prepared.entry, prepared.ttl, partition);
          return prepared.entry;
        },
        (e: unknown) => {
          if (e instanceof UpstreamError && e.kind === 'timeout') return this.failed(key, name, qtype, qclass, 'timeout', partition);
          throw e;
        },
      );
      this.inflight.set(flight, p);
      const done = () => this.inflight.delete(flight);
      p.then(done, done);
    }
    return p;
  }

  private failed(key: string, name: string, qtype: number, qclass: number, kind: FailureKind, partition: string): CacheEntry {
    const entry = failureEntry(name, qtype, qclass, kind, clockMs(), this.failureTtl);
    this.cache.set(key, entry, this.failureTtl, partition);
    dnsMetrics.failureStored(kind);
    return entry;
  }

  resolveCached(name: string, partition = ''): string[] | undefined {
    if (this.remote !== null) return undefined;
    const n = name.endsWith('.') ? name.slice(0, -1).toLowerCase() : name.toLowerCase();
    if (!isPlainName(n)) return undefined;
    const now = clockMs();
    const keyA = cacheKey(n, T.A, CLASS_IN);
    const keyAAAA = cacheKey(n, T.AAAA, CLASS_IN);
    const a = this.cache.get(keyA, now, partition);
    const aaaa = this.cache.get(keyAAAA, now, partition);
    // Both answers known (an error or a cached failure counts as known: it adds no
    // address, as in resolve()) and at least one address. Else the async path, which has
    // the error rules.
    if (a === undefined && !this.knownEmpty(keyA, now, partition)) return undefined;
    if (aaaa === undefined && !this.knownEmpty(keyAAAA, now, partition)) return undefined;
    const out: string[] = [];
    if (a !== undefined) for (const ip of a.addresses) if (!ip.includes(':')) out.push(ip);
    if (aaaa !== undefined) for (const ip of aaaa.addresses) if (ip.includes(':')) out.push(ip);
    if (out.length === 0) return undefined;
    countHit(a);
    countHit(aaaa);
    return out;
  }

  /** NODATA memory is per partition too (else one account could fill it). */
  private knownEmpty(key: string, now: number, partition: string): boolean {
    const k = `${partition}\u0000${key}`;
    const until = this.nodata.get(k);
    if (until === undefined) return false;
    if (until > now) return true;
    this.nodata.delete(k);
    return false;
  }

  async resolve(name: string, partition = ''): Promise<string[]> {
    const n = name.endsWith('.') ? name.slice(0, -1).toLowerCase() : name.toLowerCase();
    if (!isPlainName(n)) throw new ResolveError('NXDOMAIN', name);
    const [a, aaaa] = await Promise.allSettled([this.addresses(n, T.A, partition), this.addresses(n, T.AAAA, partition)]);
    const out = [...(a.status === 'fulfilled' ? a.value : []), ...(aaaa.status === 'fulfilled' ? aaaa.value : [])];
    if (out.length > 0) return out;
    if (a.status === 'rejected') throw a.reason;
    if (aaaa.status === 'rejected') throw aaaa.reason;
    throw new ResolveError('NODATA', name);
  }

  private async addresses(name: string, qtype: number, partition: string): Promise<string[]> {
    const key = cacheKey(name, qtype, CLASS_IN);
    const now = clockMs();
    if (this.cache.get(key, now, partition) === undefined && this.knownEmpty(key, now, partition)) return [];
    let entry: CacheEntry;
    try {
      entry = await this.lookup(name, qtype, CLASS_IN, now, partition);
    } catch (e) {
      throw e instanceof ResolveError ? e : new ResolveError('TIMEOUT', name);
    }
    if (entry.failure === 'timeout') throw new ResolveError('TIMEOUT', name);
    if (entry.rcode === RCODE.NXDOMAIN) throw new ResolveError('NXDOMAIN', name);
    if (entry.rcode !== RCODE.NOERROR) throw new ResolveError('SERVFAIL', name);
    const v6 = qtype === T.AAAA;
    const out = entry.addresses.filter((ip) => ip.includes(':') === v6);
    // NODATA the cache would not keep (no SOA: served once): remember it for minTtl.
    if (out.length === 0 && entry.expiresAt <= entry.storedAt && this.bounds.minTtl > 0) {
      this.nodata.set(`${partition}\u0000${key}`, clockMs() + this.bounds.minTtl * 1000);
    }
    return out;
  }

  close(): void {
    this.upstream.close();
    this.cache.dispose();
  }
}
