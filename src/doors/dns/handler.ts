/**
 * One DNS query, start to answer: rate limit and identity (before reading more than the
 * header), parse the question, decide() on the name, then a local answer, a denial
 * (NXDOMAIN/REFUSED with EDE 15), or the cached/forwarded upstream answer relayed with
 * the client's id and question, whose A/AAAA addresses are learned for the devbox.
 * Never throws; returns null to drop.
 */
import type { Logger } from 'pino';
import type { GatewayConfig } from '../../config.js';
import { type Gate, allowLogEvery } from '../floor/gate.js';
import type { PolicyEngine, Identity } from '../../policy/engine.js';
import { type Decision, decisionLabel, denial } from '../../policy/decision.js';
import { type CacheEntry, clockMs, refreshTtls } from '../../resolver/cache.js';
import type { CachedResolver } from '../../resolver/resolver.js';
import { blockedOpt, CACHED_ERROR_OPT, PLAIN_OPT, rateLimitedOpt } from './ede.js';
import { dnsMetrics } from '../../resolver/metrics.js';
import { countDecision } from '../../metrics.js';
import { isLocalReverse } from './reverse.js';
import { DeferredLines } from '../../log.js';
import { AA, CLASS_IN, RCODE, RCODE_NAMES, T, TC, type Query, emptyReply, parseQuery, replyFlags, typeName } from '../../resolver/wire.js';

export type Transport = 'udp' | 'tcp';
export type HandleResult = Buffer | null | Promise<Buffer | null>;

export interface HandlerDeps {
  config: Pick<GatewayConfig, 'dnsDenyRcode' | 'dnsLearnGrace' | 'dnsRateLimit' | 'logAllowed'> & Partial<Pick<GatewayConfig, 'workers'>>;
  engine: PolicyEngine;
  gate: Pick<Gate, 'record'>;
  resolver: CachedResolver;
  log: Logger;
  /** One allowed query in this many is logged (0: none). */
  allowLogEvery?: number;
  /** With workers: a promise while addresses just learned are on their way to the others (see DoorContext). */
  learnedShared?: () => Promise<void> | null;
}

/** Fixed one-second windows per devbox (or source address); the table is emptied every window. */
class RateLimiter {
  private window = -1;
  private readonly counts = new Map<string, number>();

  constructor(public perSecond: number) {}

  allow(source: string, now: number): boolean {
    if (this.perSecond <= 0) return true;
    const w = Math.floor(now / 1000);
    if (w !== this.window) {
      this.window = w;
      this.counts.clear();
    }
    const n = (this.counts.get(source) ?? 0) + 1;
    this.counts.set(source, n);
    return n <= this.perSecond;
  }
}

/** At most one line per kind per second, so floods cannot flood the log. */
class LogThrottle {
  private readonly last = new Map<string, number>();
  ok(kind: string, now: number): boolean {
    const t = this.last.get(kind) ?? 0;
    if (now - t < 1000) return false;
    this.last.set(kind, now);
    return true;
  }
}

const MAX_UDP_REPLY = 4096;
const TIME_ORIGIN = performance.timeOrigin;

interface DeniedSeen {
  identity: Identity;
  decision: Decision;
  qtype: string;
  repeats: number;
}

/**
 * One log line per denied query, except that identical denials (same devbox, name and
 * type) within one second are folded into a single follow-up line with a `repeats`
 * count, so a query flood cannot turn into a log flood. Every denial is counted.
 */
class DenialLog {
  private window = -1;
  private seen = new Map<string, DeniedSeen>();
  private overflow = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly gate: Pick<Gate, 'record'>,
    private readonly log: DeferredLines,
    private readonly maxKeys = 10_000,
  ) {
    this.timer = setInterval(() => this.flush(clockMs()), 1000);
    this.timer.unref();
  }

  record(identity: Identity, decision: Decision, qtype: string, now: number): void {
    const w = Math.floor(now / 1000);
    if (w !== this.window) this.flush(now);
    const key = `${identity.devboxId}\u0000${decision.host}\u0000${qtype}`;
    const e = this.seen.get(key);
    if (e !== undefined) {
      e.repeats++;
      countDecision('dns', decision);
      return;
    }
    if (this.seen.size >= this.maxKeys) {
      this.overflow++;
      countDecision('dns', decision);
      return;
    }
    this.seen.set(key, { identity, decision, qtype, repeats: 0 });
    this.gate.record(identity, 'dns', decision, 53); // counts, and logs the denial
  }

  /**
   * Starts a new window. The old one's follow-up lines are made after the answers of this
   * turn (setImmediate), not on the answer path of the query that crossed the second.
   */
  flush(now: number, at: 'now' | 'later' = 'later'): void {
    this.window = Math.floor(now / 1000);
    if (this.seen.size === 0 && this.overflow === 0) return;
    const seen = this.seen;
    const overflow = this.overflow;
    this.seen = new Map();
    this.overflow = 0;
    if (at === 'now') this.report(seen, overflow);
    else setImmediate(() => this.report(seen, overflow));
  }

  private report(seen: Map<string, DeniedSeen>, overflow: number): void {
    for (const e of seen.values()) {
      if (e.repeats === 0) continue;
      this.log.info(
        {
          event: 'decision',
          devbox: e.identity.devboxId,
          source: e.identity.source,
          policy: e.decision.policyId,
          host: e.decision.host,
          port: 53,
          qtype: e.qtype,
          decision: decisionLabel(e.decision),
          reason: e.decision.reason,
          repeats: e.repeats,
        },
        e.decision.allow ? 'egress would be denied (report-only policy, repeated within 1 s)' : 'egress denied (repeated within 1 s)',
      );
    }
    if (overflow > 0) this.log.warn({ event: 'dns_denials_unlogged', count: overflow }, 'DNS denials over the per-second log budget (counted, not logged)');
  }

  close(): void {
    clearInterval(this.timer);
    this.flush(clockMs(), 'now');
  }
}

export class DnsHandler {
  private readonly limiter: RateLimiter;
  private readonly throttle = new LogThrottle();
  private readonly denials: DenialLog;
  /** Every line the door writes goes out after the answers (see DeferredLines). */
  private readonly lines: DeferredLines;
  private readonly denyRcode: number;
  private readonly graceSeconds: number;
  private readonly allowLogEvery: number;
  private allowedSeen = 0;

  /** SIGHUP: a new per-client query rate. */
  setRateLimit(perSecond: number): void {
    this.limiter.perSecond = perSecond;
  }

  constructor(private readonly deps: HandlerDeps) {
    this.limiter = new RateLimiter(deps.config.dnsRateLimit);
    this.denyRcode = deps.config.dnsDenyRcode === 'refused' ? RCODE.REFUSED : RCODE.NXDOMAIN;
    this.graceSeconds = deps.config.dnsLearnGrace;
    this.allowLogEvery = deps.allowLogEvery ?? allowLogEvery(deps.config.logAllowed);
    this.lines = new DeferredLines(deps.log);
    this.denials = new DenialLog(deps.gate, this.lines);
  }

  close(): void {
    this.denials.close();
    this.lines.flush();
  }

  handle(msg: Buffer, source: string, transport: Transport): HandleResult {
    const started = performance.now();
    if (msg.length < 12 || (msg[2]! & 0x80) !== 0) {
      dnsMetrics.query('malformed', 'none', 'dropped');
      return null;
    }
    const now = TIME_ORIGIN + started;
    const identity = this.deps.engine.identifyByAddress(source);
    // Per devbox, all its addresses together (else per source address).
    if (!this.limiter.allow(identity.devboxId ?? source, now)) {
      dnsMetrics.query('rate_limited', 'none', 'REFUSED');
      const limit = this.limiter.perSecond;
      if (this.throttle.ok('rate_limited', now)) this.lines.warn({ event: 'dns_rate_limited', source, devbox: identity.devboxId, limit, setting: '--dns-rate-limit' }, `DNS client over its query rate (${limit}/s, --dns-rate-limit); answering REFUSED`);
      return this.refusedQuickly(msg, rateLimitedOpt(limit, this.deps.config.workers ?? 1), transport);
    }
    if (identity.devboxId === null) {
      dnsMetrics.query('unknown_client', 'none', 'REFUSED');
      if (this.throttle.ok('unknown_client', now)) this.lines.info({ event: 'dns_unknown_client', source }, 'DNS query from an unknown client refused');
      dnsMetrics.answered('refused', (performance.now() - started) / 1000);
      return this.refusedQuickly(msg);
    }
    const q = parseQuery(msg);
    if ('drop' in q) {
      if (q.drop) {
        dnsMetrics.query('malformed', 'none', 'dropped');
        return null;
      }
      dnsMetrics.query('malformed', 'none', RCODE_NAMES[q.rcode] ?? 'other');
      // A malformed question is not echoed; a well-formed one is.
      return emptyReply(msg, q.qEnd, q.rcode, null);
    }
    return this.answer(msg, q, identity, transport, started, now);
  }

  /**
   * REFUSED: header and (when it parses) the question, and `opt` (an EDE saying why) when the
   * query had EDNS; over UDP only when that keeps the answer no larger than the query (a
   * refusal to a spoofed source is no amplifier).
   */
  private refusedQuickly(msg: Buffer, opt: Buffer | null = null, transport: Transport = 'udp'): Buffer | null {
    const q = parseQuery(msg);
    if ('drop' in q) return q.drop ? null : emptyReply(msg, 12, RCODE.REFUSED, null);
    const fits = opt !== null && (transport === 'tcp' || q.qEnd + opt.length <= msg.length);
    return emptyReply(msg, q.qEnd, RCODE.REFUSED, q.edns && fits ? opt : null);
  }

  private answer(msg: Buffer, q: Query, identity: Identity, transport: Transport, started: number, now: number): HandleResult {
    const qt = typeName(q.qtype);
    if (q.qclass !== CLASS_IN) return this.local(msg, q, RCODE.REFUSED, 0, 'refused', qt, started);
    if (q.qtype === T.AXFR || q.qtype === T.IXFR) return this.local(msg, q, RCODE.REFUSED, 0, 'refused', qt, started);
    if (isLocalReverse(q.name, this.deps.engine)) return this.local(msg, q, RCODE.NXDOMAIN, AA, 'local', qt, started);

    let decision: Decision;
    if (!q.plain) decision = this.deps.engine.denyUnreadable(identity, q.name);
    else {
      decision = this.deps.engine.decide(identity, q.name, 53, 'UDP');
      // IP-literal spellings are not DNS names: never forwarded.
      if (decision.allow && decision.hostKind !== 'name') decision = denial('invalid_host', q.name, decision, decision.hostKind);
    }
    if (!decision.allow) {
      this.denials.record(identity, decision, qt, now);
      const rcode = this.denyRcode;
      const out = emptyReply(msg, q.qEnd, rcode, q.edns ? blockedOpt(decision) : null);
      dnsMetrics.query('deny', qt, RCODE_NAMES[rcode]!);
      dnsMetrics.answered('denied', (performance.now() - started) / 1000);
      return out;
    }
    // Allowed queries are counted, not logged (one line per query would flood the log);
    // a report-only policy's would-denials are logged and recorded like denials.
    if (decision.wouldDeny === true) this.denials.record(identity, decision, qt, now);
    else countDecision('dns', decision);
    if (q.qtype === T.ANY) return this.anyAnswer(msg, q, qt, started);

    // Answers are cached per account: one account's unique names evict only its own.
    const account = this.deps.engine.devbox(identity.devboxId!)?.account_id ?? '';
    const r = this.deps.resolver.lookup(q.name, q.qtype, q.qclass, now, account);
    if (!(r instanceof Promise)) return this.relay(msg, q, r, identity, transport, decision, started, now, 'cache');
    return r.then(
      (entry) => this.relay(msg, q, entry, identity, transport, decision, started, clockMs(), 'upstream'),
      () => {
        dnsMetrics.query('allow', qt, 'SERVFAIL');
        dnsMetrics.answered('upstream', (performance.now() - started) / 1000);
        return emptyReply(msg, q.qEnd, RCODE.SERVFAIL, q.edns ? PLAIN_OPT : null);
      },
    );
  }

  private relay(msg: Buffer, q: Query, e: CacheEntry, identity: Identity, transport: Transport, decision: Decision, started: number, now: number, source: 'cache' | 'upstream'): HandleResult {
    refreshTtls(e, now);
    if (e.addresses.length > 0) {
      // Expiry of the answer + grace; stable across hits, so repeated learning is a no-op.
      const ttl = (e.expiresAt - now) / 1000 + this.graceSeconds;
      const dropped = this.deps.engine.learned.learn(identity.devboxId!, q.name, e.addresses, ttl > 0 ? ttl : this.graceSeconds, now);
      dnsMetrics.learnedDropped('per_devbox', dropped);
      dnsMetrics.learnedDropped('per_answer', e.addressCount - e.addresses.length);
      // Another worker may take the devbox's connection to these addresses: they have them first.
      const shared = this.deps.learnedShared?.();
      if (shared) {
        const out = this.reply(msg, q, e, identity, transport, decision, started, source);
        return shared.then(() => out);
      }
    }
    return this.reply(msg, q, e, identity, transport, decision, started, source);
  }

  private reply(msg: Buffer, q: Query, e: CacheEntry, identity: Identity, transport: Transport, decision: Decision, started: number, source: 'cache' | 'upstream'): Buffer {
    const tmpl = e.bytes;
    const opt = !q.edns ? null : e.failure !== undefined && source === 'cache' ? CACHED_ERROR_OPT : PLAIN_OPT;
    const len = tmpl.length + (opt === null ? 0 : opt.length);
    const limit = transport === 'tcp' ? 65535 : q.edns ? Math.min(q.udpSize, MAX_UDP_REPLY) : 512;
    let out: Buffer;
    if (len > limit) {
      out = emptyReply(msg, q.qEnd, e.rcode, opt, TC);
    } else {
      out = Buffer.allocUnsafe(len);
      out.set(tmpl, 0);
      out[0] = msg[0]!;
      out[1] = msg[1]!;
      const flags = replyFlags(q.flags, e.rcode);
      out[2] = flags >> 8;
      out[3] = flags & 0xff;
      // The client's question, byte for byte (its letter case included).
      for (let i = 12, end = q.qEnd; i < end; i++) out[i] = msg[i]!;
      if (opt !== null) {
        out.set(opt, tmpl.length);
        out.writeUInt16BE(e.ar + 1, 10);
      }
    }
    const rc = RCODE_NAMES[e.rcode] ?? 'other';
    dnsMetrics.query('allow', typeName(q.qtype), rc);
    const seconds = (performance.now() - started) / 1000;
    dnsMetrics.answered(source, seconds);
    if (this.allowLogEvery > 0 && ++this.allowedSeen % this.allowLogEvery === 0) {
      this.lines.info(
        {
          event: 'dns_query',
          devbox: identity.devboxId,
          source: identity.source,
          policy: decision.policyId,
          host: q.name,
          qtype: typeName(q.qtype),
          rcode: rc,
          decision: 'allow',
          reason: decision.reason,
          answered_from: source,
          addresses: e.addresses.length,
          duration_ms: Math.round(seconds * 1e6) / 1000,
          sampled: `1/${this.allowLogEvery}`,
        },
        'dns query allowed (sampled)',
      );
    }
    return out;
  }

  /** RFC 8482 §4.2: answer ANY with one synthesized HINFO record, without asking upstream. */
  private anyAnswer(msg: Buffer, q: Query, qt: string, started: number): Buffer {
    const rdata = Buffer.from('\u0007RFC8482\u0000', 'latin1');
    const rr = Buffer.allocUnsafe(2 + 10 + rdata.length);
    rr.writeUInt16BE(0xc00c, 0);
    rr.writeUInt16BE(T.HINFO, 2);
    rr.writeUInt16BE(CLASS_IN, 4);
    rr.writeUInt32BE(3600, 6);
    rr.writeUInt16BE(rdata.length, 10);
    rdata.copy(rr, 12);
    const head = emptyReply(msg, q.qEnd, RCODE.NOERROR, null);
    const out = Buffer.concat([head, rr, q.edns ? PLAIN_OPT : Buffer.alloc(0)]);
    out.writeUInt16BE(1, 6);
    out.writeUInt16BE(q.edns ? 1 : 0, 10);
    dnsMetrics.query('allow', qt, 'NOERROR');
    dnsMetrics.answered('local', (performance.now() - started) / 1000);
    return out;
  }

  private local(msg: Buffer, q: Query, rcode: number, extraFlags: number, decision: string, qt: string, started: number): Buffer {
    dnsMetrics.query(decision, qt, RCODE_NAMES[rcode] ?? 'other');
    dnsMetrics.answered('local', (performance.now() - started) / 1000);
    return emptyReply(msg, q.qEnd, rcode, q.edns ? PLAIN_OPT : null, extraFlags);
  }
}
