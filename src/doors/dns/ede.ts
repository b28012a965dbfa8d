/** EDNS OPT records the door attaches to its own answers, with Extended DNS Errors (RFC 8914). */
import { EDNS_UDP_SIZE, T } from '../../resolver/wire.js';
import type { Decision } from '../../policy/decision.js';
import { explainDenial } from '../../policy/explain.js';

export const EDE_OPTION = 15;
export const EDE = { OTHER: 0, CACHED_ERROR: 13, BLOCKED: 15, PROHIBITED: 18, NOT_READY: 14, NO_REACHABLE_AUTHORITY: 22 } as const;

/** An empty OPT record (no options). */
export const PLAIN_OPT: Buffer = optWithEde(null, '');

/** An OPT record carrying one EDE option with its info code and UTF-8 extra text. */
export function optWithEde(code: number | null, text: string): Buffer {
  const t = Buffer.from(text.slice(0, 200), 'utf8');
  const rdlen = code === null ? 0 : 4 + 2 + t.length;
  const out = Buffer.alloc(11 + rdlen);
  out[0] = 0; // root owner
  out.writeUInt16BE(T.OPT, 1);
  out.writeUInt16BE(EDNS_UDP_SIZE, 3);
  out.writeUInt32BE(0, 5); // extended rcode 0, version 0, flags 0
  out.writeUInt16BE(rdlen, 9);
  if (code !== null) {
    out.writeUInt16BE(EDE_OPTION, 11);
    out.writeUInt16BE(2 + t.length, 13);
    out.writeUInt16BE(code, 15);
    t.copy(out, 17);
  }
  return out;
}

/** A resolution failure answered from the failure cache (RFC 8914 §4.14, RFC 9520). */
export const CACHED_ERROR_OPT: Buffer = optWithEde(EDE.CACHED_ERROR, 'resolution failure cached');

/**
 * The EDE 15 "Blocked" OPT for a denial under a policy, with its detail (explain.ts: "no rule
 * matched", or the entry that nearly did), memoised: few distinct texts.
 */
const blockedOpts = new Map<string, Buffer>();
export function blockedOpt(d: Decision): Buffer {
  const detail = explainDenial(d).detail;
  const key = `${d.policyId ?? ''}\u0000${d.reason}\u0000${detail ?? ''}`;
  let opt = blockedOpts.get(key);
  if (opt === undefined) {
    // Gateway-made text only, ASCII (a name in `detail` is normalised).
    const text = `blocked by egress policy ${d.policyId ?? '(none)'} (${d.reason}${detail === null ? '' : `: ${detail}`})`.replace(/[^\x20-\x7e]/g, '?');
    opt = optWithEde(EDE.BLOCKED, text);
    if (blockedOpts.size > 10_000) blockedOpts.clear();
    blockedOpts.set(key, opt);
  }
  return opt;
}

/** The EDE 0 "Other Error" OPT for a query over --dns-rate-limit, naming the limit and its setting. */
let rateOpt: { limit: number; workers: number; opt: Buffer } | null = null;
export function rateLimitedOpt(limit: number, workers: number): Buffer {
  if (rateOpt === null || rateOpt.limit !== limit || rateOpt.workers !== workers) {
    const where = workers > 1 ? ` in this worker (--dns-rate-limit, split over ${workers} workers)` : ' (--dns-rate-limit)';
    rateOpt = { limit, workers, opt: optWithEde(EDE.OTHER, `rate limited: over ${limit} queries a second from this devbox${where}`) };
  }
  return rateOpt.opt;
}
