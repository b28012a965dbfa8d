/** EDNS OPT records the door attaches to its own answers, with Extended DNS Errors (RFC 8914). */
import { EDNS_UDP_SIZE, T } from '../../resolver/wire.js';

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

/** The EDE 15 "Blocked" OPT for a denial under a policy (memoised: few distinct texts). */
const blockedOpts = new Map<string, Buffer>();
export function blockedOpt(policyId: string | null, reason: string): Buffer {
  const key = `${policyId ?? ''}\u0000${reason}`;
  let opt = blockedOpts.get(key);
  if (opt === undefined) {
    opt = optWithEde(EDE.BLOCKED, `blocked by egress policy ${policyId ?? '(none)'} (${reason})`);
    if (blockedOpts.size > 10_000) blockedOpts.clear();
    blockedOpts.set(key, opt);
  }
  return opt;
}
