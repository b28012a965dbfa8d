/**
 * The answer cache, shared by the DNS door and the gateway's own resolver: upstream
 * answers keyed by name/type/class, kept as wire bytes (OPT removed, ECH stripped, TTLs
 * bounded) for the answer's TTL; negative answers for the SOA's negative TTL (RFC 2308).
 * A hit is a copy of the bytes with the client's id and question written in place and the
 * TTLs counted down; nothing is decoded on that path.
 */
import { LRUCache } from 'lru-cache';
import { Counter, Gauge } from 'prom-client';
import { registry } from '../metrics.js';
import dnsPacket from 'dns-packet';
import { type AnswerInfo, RCODE, T, buildQuery, inspectAnswer, stripSvcbEch } from './wire.js';

export interface CacheEntry {
  /** Answer template: no OPT; TTLs as of `age` seconds after storing. */
  readonly bytes: Buffer;
  readonly rcode: number;
  /** Records in the additional section (OPT excluded). */
  readonly ar: number;
  readonly ttlOffsets: readonly number[];
  /** TTLs as stored (bounded), one per offset. */
  readonly ttls: Uint32Array;
  readonly storedAt: number;
  /** When the entry stops being served (ms, Date.now clock). */
  readonly expiresAt: number;
  /** A and AAAA addresses of the answer section: the first --dns-learn-per-answer of them. */
  readonly addresses: readonly string[];
  /** A and AAAA records in the answer section (the answer served has them all). */
  readonly addressCount: number;
  /** What the entry costs the cache, in bytes (estimated; see entryBytes). */
  readonly size: number;
  /**
   * Set on a resolution failure (RFC 9520): what the upstreams did (timeout, servfail,
   * refused, …). The entry is then an empty SERVFAIL answer kept for --dns-failure-ttl.
   */
  readonly failure?: FailureKind;
  age: number;
}

/** How a resolution failed: no answer in time, or the upstream's rcode (lower-case), or an unusable answer. */
export type FailureKind = 'timeout' | 'servfail' | 'refused' | 'formerr' | 'notimp' | 'malformed' | 'other';

export interface TtlBounds {
  minTtl: number;
  maxTtl: number;
}

/** Longest time a negative answer is kept (RFC 2308 §5 suggests 1–3 hours at most). */
const MAX_NEGATIVE_TTL = 3 * 3600;

/** Wall-clock milliseconds (fractional), the clock of every expiry in the DNS door. */
export function clockMs(): number {
  return performance.timeOrigin + performance.now();
}

export function cacheKey(name: string, qtype: number, qclass: number): string {
  return `${name}|${qtype}|${qclass}`;
}

/**
 * Turns an upstream answer into a servable entry: OPT removed, HTTPS/SVCB `ech` removed,
 * TTLs bounded. `ttl` is how long it may be cached (0: serve once, do not keep).
 * Returns null when the answer is malformed or cannot be cleaned.
 */
export function prepareAnswer(raw: Buffer, bounds: TtlBounds, now: number, maxAddresses = Number.MAX_SAFE_INTEGER): { entry: CacheEntry; ttl: number } | null {
  let info = inspectAnswer(raw, maxAddresses);
  if (info === null) return null;
  let bytes: Buffer;
  if (info.hasEch || (info.optAt >= 0 && info.optAt + info.optLen !== raw.length)) {
    const rebuilt = rebuild(raw);
    if (rebuilt === null) return null;
    bytes = rebuilt;
    info = inspectAnswer(bytes, maxAddresses);
    if (info === null || info.hasEch) return null;
  } else {
    const end = info.optAt >= 0 ? info.optAt : raw.length;
    bytes = Buffer.allocUnsafe(end);
    raw.copy(bytes, 0, 0, end);
  }
  // Header: id 0 (set per reply), counts without OPT.
  bytes.writeUInt16BE(0, 0);
  bytes.writeUInt16BE(info.ar, 10);
  const ttl = cacheTtl(info, bounds);
  const ttls = new Uint32Array(info.ttlOffsets.length);
  info.ttlOffsets.forEach((off, i) => {
    const orig = bytes.readUInt32BE(off);
    const negative = info!.rcode === RCODE.NXDOMAIN || info!.an === 0;
    const t = negative && ttl > 0 ? ttl : clamp(orig > 0x7fffffff ? 0 : orig, bounds);
    ttls[i] = t;
    bytes.writeUInt32BE(t, off);
  });
  const entry: CacheEntry = {
    bytes,
    rcode: info.rcode,
    ar: info.ar,
    ttlOffsets: info.ttlOffsets,
    ttls,
    storedAt: now,
    expiresAt: now + ttl * 1000,
    addresses: info.addresses,
    addressCount: info.addressCount,
    size: entryBytes(bytes.length, info.ttlOffsets.length, info.addresses.length),
    age: 0,
  };
  return { entry, ttl };
}

/**
 * A resolution failure as a servable entry (RFC 9520 §3.2): an empty SERVFAIL answer to
 * the question, kept `ttl` seconds so a broken upstream costs one query per name and type
 * per TTL, not one per client.
 */
export function failureEntry(name: string, qtype: number, qclass: number, kind: FailureKind, now: number, ttl: number): CacheEntry {
  const q = buildQuery(0, name, qtype, qclass);
  const bytes = Buffer.from(q.subarray(0, q.length - 11)); // without the query's OPT
  bytes.writeUInt16BE(RCODE.SERVFAIL, 2);
  bytes.writeUInt16BE(0, 10);
  return {
    bytes,
    rcode: RCODE.SERVFAIL,
    ar: 0,
    ttlOffsets: [],
    ttls: new Uint32Array(0),
    storedAt: now,
    expiresAt: now + ttl * 1000,
    addresses: [],
    addressCount: 0,
    size: entryBytes(bytes.length, 0, 0),
    failure: kind,
    age: 0,
  };
}

/** The failure an upstream rcode stands for, or null when the answer is usable (NOERROR, NXDOMAIN). */
export function failureOfRcode(rcode: number): FailureKind | null {
  switch (rcode) {
    case RCODE.NOERROR:
    case RCODE.NXDOMAIN:
      return null;
    case RCODE.SERVFAIL:
      return 'servfail';
    case RCODE.REFUSED:
      return 'refused';
    case RCODE.FORMERR:
      return 'formerr';
    case RCODE.NOTIMP:
      return 'notimp';
    default:
      return 'other';
  }
}

/**
 * What an entry holds on the heap, roughly: its wire bytes, the TTL tables, the address
 * strings and the objects around them (key, LRU node). Measured with 4,000-address answers,
 * the address strings were most of it, so they are counted, not only the bytes.
 */
export function entryBytes(wire: number, ttls: number, addresses: number): number {
  return 320 + wire + ttls * 12 + addresses * 56;
}

function clamp(ttl: number, b: TtlBounds): number {
  return Math.min(Math.max(ttl, b.minTtl), b.maxTtl);
}

/** Seconds an answer may be cached: the lowest record TTL, or the negative TTL; 0 for none. */
function cacheTtl(info: AnswerInfo, b: TtlBounds): number {
  if (info.tc) return 0;
  if (info.rcode === RCODE.NOERROR && info.an > 0) return clamp(info.minTtl < 0 ? 0 : Math.min(info.minTtl, 0x7fffffff), b);
  if (info.rcode === RCODE.NXDOMAIN || (info.rcode === RCODE.NOERROR && info.an === 0)) {
    if (info.soaTtl < 0) return 0; // RFC 2308 §5: no SOA, no negative caching
    return Math.min(clamp(Math.min(info.soaTtl, info.soaMinimum), b), MAX_NEGATIVE_TTL);
  }
  return 0;
}

/** The rare path: decode, drop OPT and `ech`, encode (names come out uncompressed). */
function rebuild(raw: Buffer): Buffer | null {
  try {
    const p = dnsPacket.decode(raw) as dnsPacket.Packet & { flags?: number };
    const clean = (list: dnsPacket.Answer[] | undefined): dnsPacket.Answer[] => {
      const out: dnsPacket.Answer[] = [];
      for (const r of list ?? []) {
        const type = r.type as string;
        if (type === 'OPT') continue;
        if (type === `UNKNOWN_${T.HTTPS}` || type === `UNKNOWN_${T.SVCB}`) {
          const data = (r as { data: Buffer }).data;
          const stripped = Buffer.isBuffer(data) ? stripSvcbEch(data) : null;
          if (stripped === null) continue; // unparseable: drop the record rather than pass ECH
          out.push({ ...(r as object), data: stripped } as dnsPacket.Answer);
          continue;
        }
        out.push(r);
      }
      return out;
    };
    return dnsPacket.encode({
      ...p,
      answers: clean(p.answers),
      authorities: clean(p.authorities),
      additionals: clean(p.additionals),
    } as dnsPacket.Packet);
  } catch {
    return null;
  }
}

/** Live caches, for the gauge (weakly: a gateway closed in a test process is not kept). */
const caches = new Set<WeakRef<AnswerCache>>();

new Gauge({
  name: 'egress_dns_cache_entries',
  help: 'Answers the DNS cache holds, and the accounts (partitions) holding them',
  labelNames: ['what'] as const,
  registers: [registry],
  collect() {
    let entries = 0;
    let partitions = 0;
    for (const ref of caches) {
      const c = ref.deref();
      if (c === undefined) {
        caches.delete(ref);
        continue;
      }
      entries += c.size;
      partitions += c.partitions;
    }
    this.set({ what: 'entries' }, entries);
    this.set({ what: 'partitions' }, partitions);
  },
});

new Gauge({
  name: 'egress_dns_cache_bytes',
  help: 'Estimated bytes the DNS answer cache holds (bounded by --dns-cache-bytes per host and --dns-cache-bytes-per-account)',
  registers: [registry],
  collect() {
    let bytes = 0;
    for (const ref of caches) bytes += ref.deref()?.byteSize ?? 0;
    this.set(bytes);
  },
});

const evictions = new Counter({
  name: 'egress_dns_cache_evictions_total',
  help: "Answers evicted because their account's partition was full (--dns-cache-size, --dns-cache-bytes-per-account) or the host's cache was (--dns-cache-bytes: from the largest partition)",
  registers: [registry],
});

/** The byte bounds of an AnswerCache (estimated heap bytes, see entryBytes). */
export interface CacheBytes {
  /** One account's partition. */
  perPartition: number;
  /** Every partition together: past it, the largest partition gives way. */
  total: number;
}

const UNBOUNDED: CacheBytes = { perPartition: 2 ** 40, total: 2 ** 40 };

/**
 * Answers partitioned by account: each account's answers live in an LRU of their own of
 * `max` entries and `bytes.perPartition` bytes, so one account asking for many unique names
 * (or names with huge answers) evicts only its own answers, never another account's. All
 * partitions together hold at most `bytes.total`: past it, the largest partition's least
 * recently used answers go first, so a small account keeps its answers while a large one is
 * trimmed. Partition '' holds answers not asked for by an account.
 */
export class AnswerCache {
  private readonly parts = new Map<string, LRUCache<string, CacheEntry>>();
  hits = 0;
  misses = 0;

  private readonly ref = new WeakRef(this);

  constructor(
    readonly bounds: TtlBounds,
    readonly max = 20_000,
    readonly bytes: CacheBytes = UNBOUNDED,
  ) {
    caches.add(this.ref);
  }

  /** Estimated bytes every partition holds. */
  get byteSize(): number {
    let n = 0;
    for (const l of this.parts.values()) n += l.calculatedSize;
    return n;
  }

  get partitions(): number {
    return this.parts.size;
  }

  get(key: string, now: number, partition = ''): CacheEntry | undefined {
    const lru = this.parts.get(partition);
    const e = lru?.get(key);
    if (e === undefined) return undefined;
    if (e.expiresAt <= now) {
      lru!.delete(key);
      return undefined;
    }
    return e;
  }

  set(key: string, entry: CacheEntry, ttl: number, partition = ''): void {
    if (ttl <= 0 || entry.size > this.bytes.perPartition) return;
    let lru = this.parts.get(partition);
    if (lru === undefined) {
      lru = new LRUCache<string, CacheEntry>({
        max: this.max,
        maxSize: this.bytes.perPartition,
        sizeCalculation: (e) => e.size,
        disposeAfter: (_v, _k, reason) => reason === 'evict' && evictions.inc(),
      });
      this.parts.set(partition, lru);
    }
    lru.set(key, entry);
    let total = this.byteSize;
    while (total > this.bytes.total) {
      let largest: LRUCache<string, CacheEntry> | undefined;
      for (const l of this.parts.values()) if (largest === undefined || l.calculatedSize > largest.calculatedSize) largest = l;
      const gone = largest?.pop(); // counted by disposeAfter ('evict')
      if (gone === undefined) break;
      total -= gone.size;
    }
  }

  /** Entries in all partitions. */
  get size(): number {
    let n = 0;
    for (const l of this.parts.values()) n += l.size;
    return n;
  }

  /** Entries one partition holds. */
  sizeOf(partition: string): number {
    return this.parts.get(partition)?.size ?? 0;
  }

  /** Forgets an account's answers (it has no running devbox left). */
  dropPartition(partition: string): void {
    this.parts.delete(partition);
  }

  clear(): void {
    this.parts.clear();
  }

  /** Stops counting this cache in the metrics (its resolver closed). */
  dispose(): void {
    caches.delete(this.ref);
    this.parts.clear();
  }
}

/**
 * A cache entry between processes (the host's one cache, `--workers N`): this beside one run
 * of bytes, the answer and then its TTL offsets (u16 each), raw. The TTLs as stored are the
 * answer's own (the process holding the cache never serves, so never counts them down).
 */
export interface WireEntry {
  rcode: number;
  ar: number;
  /** Length of the answer at the start of the bytes. */
  len: number;
  storedAt: number;
  expiresAt: number;
  addresses: string[];
  addressCount: number;
  size: number;
  failure?: FailureKind;
}

export function entryToWire(e: CacheEntry): { w: WireEntry; bin: Buffer } {
  const bin = Buffer.allocUnsafe(e.bytes.length + 2 * e.ttlOffsets.length);
  e.bytes.copy(bin, 0);
  for (let i = 0; i < e.ttlOffsets.length; i++) bin.writeUInt16BE(e.ttlOffsets[i]!, e.bytes.length + 2 * i);
  const w: WireEntry = {
    rcode: e.rcode,
    ar: e.ar,
    len: e.bytes.length,
    storedAt: e.storedAt,
    expiresAt: e.expiresAt,
    addresses: [...e.addresses],
    addressCount: e.addressCount,
    size: e.size,
  };
  if (e.failure !== undefined) w.failure = e.failure;
  return { w, bin };
}

/** A fresh entry from its wire form (its TTLs are brought to its age when served); null when the bytes do not fit. */
export function entryFromWire(w: WireEntry, bin: Buffer | undefined): CacheEntry | null {
  if (bin === undefined || w.len > bin.length || (bin.length - w.len) % 2 !== 0) return null;
  const bytes = bin.subarray(0, w.len);
  const n = (bin.length - w.len) / 2;
  const ttlOffsets: number[] = new Array(n);
  const ttls = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const off = bin.readUInt16BE(w.len + 2 * i);
    if (off + 4 > w.len) return null;
    ttlOffsets[i] = off;
    ttls[i] = bytes.readUInt32BE(off);
  }
  const { len: _len, ...rest } = w;
  return { ...rest, bytes, ttlOffsets, ttls, age: -1 };
}

/** Brings the template's TTLs to the entry's current age (in place; cheap when unchanged). */
export function refreshTtls(e: CacheEntry, now: number): void {
  const age = Math.floor((now - e.storedAt) / 1000);
  if (age === e.age) return;
  e.age = age;
  const offs = e.ttlOffsets;
  for (let i = 0; i < offs.length; i++) {
    const t = e.ttls[i]! - age;
    e.bytes.writeUInt32BE(Math.max(t, 0), offs[i]!);
  }
}
