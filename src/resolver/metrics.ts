/**
 * DNS door metrics, registered to the gateway's one registry. The door answers over a
 * hundred thousand queries a second, so the hot path only bumps plain numbers; they are
 * handed to prom-client when /metrics is scraped (counters through `collect`, histograms
 * through a small registry-compatible metric).
 */
import { Counter, type Registry } from 'prom-client';
import { registry } from '../metrics.js';

/** A counter whose increments are plain additions, flushed into prom-client at scrape. */
class FastCounter<L extends string> {
  private readonly pending = new Map<string, { labels: Record<L, string>; n: number }>();
  readonly counter: Counter<L>;

  constructor(
    name: string,
    help: string,
    private readonly labelNames: readonly L[],
    reg: Registry,
  ) {
    const pending = this.pending;
    this.counter = new Counter<L>({
      name,
      help,
      labelNames,
      registers: [reg],
      collect() {
        for (const e of pending.values()) {
          if (e.n > 0) {
            this.inc(e.labels, e.n);
            e.n = 0;
          }
        }
      },
    });
  }

  /** key must be unique per label combination; values builds the labels on first use. */
  inc(key: string, values: () => string[], n = 1): void {
    const e = this.pending.get(key);
    if (e !== undefined) {
      e.n += n;
      return;
    }
    const vals = values();
    const labels = {} as Record<L, string>;
    this.labelNames.forEach((l, i) => {
      labels[l] = vals[i] ?? '';
    });
    this.pending.set(key, { labels, n });
  }
}

interface HistSeries {
  labels: Record<string, string>;
  buckets: Float64Array;
  sum: number;
  count: number;
}

/** A labelled histogram with O(buckets) observe and no hashing; prom-client reads it via get(). */
class FastHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly series = new Map<string, HistSeries>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelName: string,
    private readonly bounds: readonly number[],
    reg: Registry,
  ) {
    reg.registerMetric(this as never);
  }

  observe(label: string, seconds: number): void {
    let s = this.series.get(label);
    if (s === undefined) {
      s = { labels: { [this.labelName]: label }, buckets: new Float64Array(this.bounds.length), sum: 0, count: 0 };
      this.series.set(label, s);
    }
    const b = this.bounds;
    for (let i = 0; i < b.length; i++) {
      if (seconds <= b[i]!) {
        s.buckets[i]!++;
        break;
      }
    }
    s.sum += seconds;
    s.count++;
  }

  get(): { name: string; help: string; type: string; aggregator: string; values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> } {
    const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
    for (const s of this.series.values()) {
      let acc = 0;
      this.bounds.forEach((le, i) => {
        acc += s.buckets[i]!;
        values.push({ labels: { ...s.labels, le }, value: acc, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { ...s.labels, le: '+Inf' }, value: s.count, metricName: `${this.name}_bucket` });
      values.push({ labels: s.labels, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: s.labels, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    this.series.clear();
  }
}

const LATENCY_BUCKETS = [0.00002, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

interface Cell {
  n: number;
}

/**
 * Queries by decision × type × rcode: three Map lookups on interned label strings and an
 * add, no string building; flushed into prom-client at scrape.
 */
class QueryCounter {
  private readonly cells = new Map<string, Map<string, Map<string, Cell>>>();
  readonly counter: Counter<'decision' | 'qtype' | 'rcode'>;

  constructor(reg: Registry) {
    const cells = this.cells;
    this.counter = new Counter({
      name: 'egress_dns_queries_total',
      help: 'DNS queries answered, by decision (allow, deny, local, refused, unknown_client, rate_limited, malformed), query type and rcode',
      labelNames: ['decision', 'qtype', 'rcode'] as const,
      registers: [reg],
      collect() {
        for (const [decision, byType] of cells) {
          for (const [qtype, byRcode] of byType) {
            for (const [rcode, cell] of byRcode) {
              if (cell.n > 0) {
                this.inc({ decision, qtype, rcode }, cell.n);
                cell.n = 0;
              }
            }
          }
        }
      },
    });
  }

  inc(decision: string, qtype: string, rcode: string): void {
    let byType = this.cells.get(decision);
    if (byType === undefined) this.cells.set(decision, (byType = new Map()));
    let byRcode = byType.get(qtype);
    if (byRcode === undefined) byType.set(qtype, (byRcode = new Map()));
    const cell = byRcode.get(rcode);
    if (cell !== undefined) cell.n++;
    else byRcode.set(rcode, { n: 1 });
  }
}

class DnsMetrics {
  readonly queries = new QueryCounter(registry);
  private hits = 0;
  private misses = 0;
  readonly cache: Counter<'result'>;
  readonly upstreamErrors = new FastCounter('egress_dns_upstream_errors_total', 'Failed upstream DNS attempts, by upstream and kind (timeout, tcp_failed, servfail, refused)', ['upstream', 'kind'] as const, registry);
  readonly failuresStored = new FastCounter('egress_dns_failure_cache_stored_total', 'Resolution failures cached (RFC 9520), by kind (timeout, servfail, refused, formerr, notimp, malformed, other)', ['kind'] as const, registry);
  readonly failureHits = new FastCounter('egress_dns_failure_cache_hits_total', 'Lookups answered from a cached resolution failure instead of asking upstream again, by kind', ['kind'] as const, registry);
  readonly upstreamSeconds = new FastHistogram('egress_dns_upstream_duration_seconds', 'Time an upstream DNS server took to answer, by transport', 'transport', LATENCY_BUCKETS, registry);
  readonly learnDropped = new FastCounter('egress_dns_learned_dropped_total', 'Addresses of served DNS answers a devbox did not learn, by reason (per_answer: past --dns-learn-per-answer; per_devbox: the devbox holds --dns-learn-per-devbox)', ['reason'] as const, registry);
  readonly answerSeconds = new FastHistogram('egress_dns_answer_duration_seconds', 'Time from a query reaching the DNS door to its answer, by source (cache, upstream, denied, local, refused)', 'source', LATENCY_BUCKETS, registry);

  constructor() {
    const self = this;
    this.cache = new Counter({
      name: 'egress_dns_cache_total',
      help: 'DNS answer cache lookups, by result (hit, miss)',
      labelNames: ['result'] as const,
      registers: [registry],
      collect() {
        if (self.hits > 0) this.inc({ result: 'hit' }, self.hits);
        if (self.misses > 0) this.inc({ result: 'miss' }, self.misses);
        self.hits = 0;
        self.misses = 0;
      },
    });
    // Both series exist from the start.
    this.cache.inc({ result: 'hit' }, 0);
    this.cache.inc({ result: 'miss' }, 0);
  }

  query(decision: string, qtype: string, rcode: string): void {
    this.queries.inc(decision, qtype, rcode);
  }

  cacheLookup(hit: boolean): void {
    if (hit) this.hits++;
    else this.misses++;
  }

  upstreamError(upstream: string, kind: string): void {
    this.upstreamErrors.inc(`${upstream}|${kind}`, () => [upstream, kind]);
  }

  failureStored(kind: string): void {
    this.failuresStored.inc(kind, () => [kind]);
  }

  failureHit(kind: string): void {
    this.failureHits.inc(kind, () => [kind]);
  }

  upstreamLatency(transport: 'udp' | 'tcp', seconds: number): void {
    this.upstreamSeconds.observe(transport, seconds);
  }

  learnedDropped(reason: 'per_answer' | 'per_devbox', n: number): void {
    if (n > 0) this.learnDropped.inc(reason, () => [reason], n);
  }

  answered(source: string, seconds: number): void {
    this.answerSeconds.observe(source, seconds);
  }
}

export const dnsMetrics = new DnsMetrics();
