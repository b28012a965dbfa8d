/**
 * The layout of the fleet's JetStream KV bucket and what each entry holds.
 *
 *   policy.<account>.<policy id>   every policy (sidecars read `policy.>`)
 *   devbox.<host>.<devbox id>      devboxes placed on a host (its sidecar reads `devbox.<host>.>`)
 *   devbox.=.<devbox id>           devboxes with no host_id: no sidecar reads them
 *   meta.watermark                 the highest change seq published contiguously
 *
 * Ids are escaped into one key token each: bytes outside [A-Za-z0-9_-] become `=XX` (hex),
 * so a lone `=` names "no host" and cannot collide with an escaped host id.
 * A value is JSON carrying the change's seq, so a publisher never overwrites a newer entry
 * with an older one (compare-and-set on the KV revision, see publisher.ts). A deleted policy
 * or a devbox that left the host is an entry whose `value` is null (a tombstone that keeps
 * its seq), never a KV delete.
 */
import type { Devbox, NetworkPolicy } from '../policy/model.js';
import type { PlaneRecord } from '../store/change-feed.js';

/**
 * The host a devbox is placed on: `host_id`, or, until the API takes `network.host_id` on this
 * branch, its metadata `fleet.host_id` (the stand-in the fleet tests register with).
 */
export function hostOf(d: Devbox): string | null {
  return d.host_id ?? null;
}

export const WATERMARK_KEY = 'meta.watermark';
export const POLICY_FILTER = 'policy.>';
export const UNPLACED = '=';

export function escapeToken(s: string): string {
  let out = '';
  for (const ch of s) {
    if (/^[A-Za-z0-9_-]$/.test(ch)) out += ch;
    else for (const b of Buffer.from(ch, 'utf8')) out += `=${b.toString(16).padStart(2, '0')}`;
  }
  return out.length === 0 ? '=00' : out;
}

export const policyKey = (accountId: string, id: string) => `policy.${escapeToken(accountId)}.${escapeToken(id)}`;
export const devboxKey = (hostId: string | null, id: string) => `devbox.${hostId === null ? UNPLACED : escapeToken(hostId)}.${escapeToken(id)}`;
export const hostFilter = (hostId: string) => `devbox.${escapeToken(hostId)}.>`;

export type FleetEntry = { seq: number; kind: 'policy'; id: string; account_id: string; value: NetworkPolicy | null } | { seq: number; kind: 'devbox'; id: string; account_id: string; host_id: string | null; value: Devbox | null };

export function keyOf(r: PlaneRecord): string {
  return r.kind === 'policy' ? policyKey(r.accountId, r.id) : devboxKey(r.hostId, r.id);
}

export function entryOf(r: PlaneRecord): FleetEntry {
  return r.kind === 'policy' ? { seq: r.seq, kind: 'policy', id: r.id, account_id: r.accountId, value: r.value } : { seq: r.seq, kind: 'devbox', id: r.id, account_id: r.accountId, host_id: r.hostId, value: r.value };
}

/** A tombstone for a key the database no longer has (a full republish found it in the bucket). */
export function tombstoneFor(key: string, seq: number): FleetEntry | null {
  const parts = key.split('.');
  if (parts.length !== 3) return null;
  const [kind, owner, id] = parts as [string, string, string];
  if (kind === 'policy') return { seq, kind: 'policy', id, account_id: owner, value: null };
  if (kind === 'devbox') return { seq, kind: 'devbox', id, account_id: '', host_id: owner === UNPLACED ? null : owner, value: null };
  return null;
}

export const encodeEntry = (e: FleetEntry): Uint8Array => Buffer.from(JSON.stringify(e));

/** A bucket entry's value, or null when it is not one this build wrote. */
export function decodeEntry(data: Uint8Array): FleetEntry | null {
  try {
    const v = JSON.parse(Buffer.from(data).toString('utf8')) as Partial<FleetEntry> | null;
    if (v === null || typeof v !== 'object' || typeof v.seq !== 'number' || typeof v.id !== 'string') return null;
    if (v.kind !== 'policy' && v.kind !== 'devbox') return null;
    return v as FleetEntry;
  } catch {
    return null;
  }
}

export function decodeSeq(data: Uint8Array): number | null {
  try {
    const v = JSON.parse(Buffer.from(data).toString('utf8')) as { seq?: unknown } | null;
    return typeof v?.seq === 'number' ? v.seq : null;
  } catch {
    return null;
  }
}
