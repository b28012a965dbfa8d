/**
 * The layout of the fleet's JetStream KV bucket and what each entry holds.
 *
 *   policy.<host>.<account>.<policy id>
 *                                  a policy a running devbox on that host references (its
 *                                  sidecar reads `policy.<host>.>`: nothing of other hosts')
 *   devbox.<host>.<devbox id>      devboxes placed on a host (its sidecar reads `devbox.<host>.>`)
 *   devbox.=.<devbox id>           devboxes with no host_id: no sidecar reads them
 *   agent.<host>.<kind>.<account>.<id>
 *                                  agent resources a host's running devboxes use (agent-scope.ts):
 *                                  kind `agent_token` (the SHA-256 hash, never the text), the
 *                                  `gateway_config` / `mcp_config` a token names (system configs
 *                                  are built in, never published) and every `secret` a token or
 *                                  config header references, as its sealed row (AES-256-GCM
 *                                  ciphertext as stored, never plaintext); the sidecar reads `agent.<host>.>`
 *   meta.watermark                 {epoch, seq}: the highest change seq published contiguously
 *   meta.snapshot                  {epoch, seq, complete}: the complete-snapshot marker (below)
 *   meta.heartbeat                 {epoch, seq, at}: written by every live publisher at least every second
 *   dead.<key>                     a dead letter: an entry that could not be published (too large)
 *
 * Epochs: every entry carries the epoch it was published in, and entries compare by (epoch,
 * seq). A publisher starts a new epoch (a number above every earlier one: the clock in ms, or
 * the last + 1) when the bucket is new or lost its store, or when the database is behind the
 * bucket (a restore or a failover that lost commits): it marks `meta.snapshot` incomplete,
 * republishes the whole database under the new epoch, and then marks it complete. A sidecar
 * replaces its snapshot only from a complete marker, so a half-filled bucket never replaces it.
 *
 * Ids are escaped into one key token each: bytes outside [A-Za-z0-9_-] become `=XX` (hex),
 * so a lone `=` names "no host" and cannot collide with an escaped host id.
 * A value is JSON carrying the change's seq, so a publisher never overwrites a newer entry
 * with an older one (compare-and-set on the KV revision, see publisher.ts). A deleted policy
 * or a devbox that left the host is an entry whose `value` is null (a tombstone that keeps
 * its seq), never a KV delete.
 */
import type { AgentGatewayConfig, McpConfig } from '../policy/credentials.js';
import type { Devbox, NetworkPolicy } from '../policy/model.js';
import type { AgentTokenRow, SecretRow } from '../store/agents.js';
import { AGENT_CHANGE_KINDS, type AgentChangeKind, type PlaneRecord } from '../store/change-feed.js';

/** The host a devbox is placed on (`network.host_id`); null: not placed. */
export function hostOf(d: Devbox): string | null {
  return d.host_id ?? null;
}

export const WATERMARK_KEY = 'meta.watermark';
export const SNAPSHOT_KEY = 'meta.snapshot';
export const HEARTBEAT_KEY = 'meta.heartbeat';
export const deadLetterKey = (key: string) => `dead.${key}`;
/** The layout of the keys above (in the snapshot marker): a replica republishes a bucket of another layout. 3: agent keys. */
export const LAYOUT = 3;
export const UNPLACED = '=';

export function escapeToken(s: string): string {
  let out = '';
  for (const ch of s) {
    if (/^[A-Za-z0-9_-]$/.test(ch)) out += ch;
    else for (const b of Buffer.from(ch, 'utf8')) out += `=${b.toString(16).padStart(2, '0')}`;
  }
  return out.length === 0 ? '=00' : out;
}

/** The id a key token stands for (escapeToken reversed); null when it is not one. */
export function unescapeToken(t: string): string | null {
  if (t === '=00') return '';
  const bytes: number[] = [];
  for (let i = 0; i < t.length; i++) {
    const c = t[i]!;
    if (c === '=') {
      const hex = t.slice(i + 1, i + 3);
      if (!/^[0-9a-f]{2}$/.test(hex)) return null;
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else bytes.push(c.charCodeAt(0));
  }
  return Buffer.from(bytes).toString('utf8');
}

/** The local snapshot's name (`kind:id`) of a bucket key, read from the key alone (never from a value that may be forged). */
export function localNameOf(key: string): string | null {
  const parts = key.split('.');
  const n = parts[0] === 'policy' ? 4 : parts[0] === 'devbox' ? 3 : parts[0] === 'agent' ? 5 : 0;
  if (parts.length !== n) return null;
  const id = unescapeToken(parts[n - 1]!);
  if (parts[0] === 'agent') return id === null || !isAgentKind(parts[2]!) ? null : `${parts[2]}:${id}`;
  return id === null ? null : `${parts[0]}:${id}`;
}

export function isAgentKind(k: unknown): k is AgentChangeKind {
  return (AGENT_CHANGE_KINDS as readonly unknown[]).includes(k);
}

export const policyKey = (hostId: string, accountId: string, id: string) => `policy.${escapeToken(hostId)}.${escapeToken(accountId)}.${escapeToken(id)}`;
export const hostPolicyFilter = (hostId: string) => `policy.${escapeToken(hostId)}.>`;
export const devboxKey = (hostId: string | null, id: string) => `devbox.${hostId === null ? UNPLACED : escapeToken(hostId)}.${escapeToken(id)}`;
export const hostFilter = (hostId: string) => `devbox.${escapeToken(hostId)}.>`;
export const agentKey = (hostId: string, kind: AgentChangeKind, accountId: string, id: string) => `agent.${escapeToken(hostId)}.${kind}.${escapeToken(accountId)}.${escapeToken(id)}`;
export const hostAgentFilter = (hostId: string) => `agent.${escapeToken(hostId)}.>`;

/** `withheld`: a tombstone standing for a change that could not be published (see dead letters). */
type EntryHead = { seq: number; epoch: number; withheld?: string };
/** An agent resource on one host's sidecar (agent-scope.ts): secrets only sealed, tokens only hashed. */
export type AgentEntry =
  | (EntryHead & { kind: 'secret'; id: string; account_id: string; value: SecretRow | null })
  | (EntryHead & { kind: 'gateway_config'; id: string; account_id: string; value: AgentGatewayConfig | null })
  | (EntryHead & { kind: 'mcp_config'; id: string; account_id: string; value: McpConfig | null })
  | (EntryHead & { kind: 'agent_token'; id: string; account_id: string; value: AgentTokenRow | null });
export type FleetEntry = (EntryHead & { kind: 'policy'; id: string; account_id: string; value: NetworkPolicy | null }) | (EntryHead & { kind: 'devbox'; id: string; account_id: string; host_id: string | null; value: Devbox | null }) | AgentEntry;

/** Where an entry or marker stands in the fleet's history: epoch first, then seq. */
export interface Position {
  epoch: number;
  seq: number;
}

/** Negative when a is older than b, 0 when equal, positive when newer. */
export function comparePosition(a: Position, b: Position): number {
  return a.epoch !== b.epoch ? a.epoch - b.epoch : a.seq - b.seq;
}

export interface SnapshotMarker extends Position {
  complete: boolean;
  at: number;
  /** The key layout it was published in (LAYOUT); 1 before per-host scope. */
  layout: number;
}

export interface Heartbeat extends Position {
  at: number;
}

/** A devbox record's key (a policy's keys are per host: host-scope.ts). */
export function devboxKeyOf(r: PlaneRecord & { kind: 'devbox' }): string {
  return devboxKey(r.hostId, r.id);
}

/**
 * A devbox entry carries what a sidecar uses: its addresses, policy, status, the proxy
 * password's hash (the sidecar checks proxy credentials) and the tunnel key (tunnel
 * hostnames); never the operator's metadata.
 */
export function entryOf(r: PlaneRecord, epoch: number): FleetEntry {
  if (r.kind === 'policy') return { seq: r.seq, epoch, kind: 'policy', id: r.id, account_id: r.accountId, value: r.value };
  return { seq: r.seq, epoch, kind: 'devbox', id: r.id, account_id: r.accountId, host_id: r.hostId, value: r.value === null ? null : { ...r.value, metadata: {} } };
}

/** The tombstone published in place of an entry that cannot be (fail closed: the resource is gone on the sidecars). */
export function withheld(e: FleetEntry, why: string): FleetEntry {
  return { ...e, value: null, withheld: why } as FleetEntry;
}

/** A tombstone for a key the database no longer has (a full republish found it in the bucket). */
export function tombstoneFor(key: string, seq: number, epoch: number): FleetEntry | null {
  const parts = key.split('.');
  if (parts[0] === 'policy' && (parts.length === 4 || parts.length === 3)) {
    // policy.<host>.<account>.<id>; three tokens: the layout before per-host scope.
    const id = unescapeToken(parts.at(-1)!);
    const account = unescapeToken(parts.at(-2)!);
    return id === null || account === null ? null : { seq, epoch, kind: 'policy', id, account_id: account, value: null };
  }
  if (parts[0] === 'agent' && parts.length === 5) {
    const kind = parts[2];
    const account = unescapeToken(parts[3]!);
    const id = unescapeToken(parts[4]!);
    return id === null || account === null || !isAgentKind(kind) ? null : ({ seq, epoch, kind, id, account_id: account, value: null } as AgentEntry);
  }
  if (parts.length !== 3) return null;
  const [kind, owner, id] = parts as [string, string, string];
  if (kind === 'devbox') return { seq, epoch, kind: 'devbox', id, account_id: '', host_id: owner === UNPLACED ? null : owner, value: null };
  return null;
}

export const encodeEntry = (e: FleetEntry): Uint8Array => Buffer.from(JSON.stringify(e));

/** A bucket entry's value, or null when it is not one this build wrote. */
export function decodeEntry(data: Uint8Array): FleetEntry | null {
  try {
    const v = JSON.parse(Buffer.from(data).toString('utf8')) as Partial<FleetEntry> | null;
    if (v === null || typeof v !== 'object' || typeof v.seq !== 'number' || typeof v.id !== 'string') return null;
    if (v.kind !== 'policy' && v.kind !== 'devbox' && !isAgentKind(v.kind)) return null;
    // Entries from before epochs were introduced are epoch 0: any epoch replaces them.
    return { ...v, epoch: typeof v.epoch === 'number' ? v.epoch : 0 } as FleetEntry;
  } catch {
    return null;
  }
}

/** The (epoch, seq) of an entry, watermark, marker or heartbeat, or null when it has none. */
export function decodePosition(data: Uint8Array): Position | null {
  try {
    const v = JSON.parse(Buffer.from(data).toString('utf8')) as { seq?: unknown; epoch?: unknown } | null;
    if (typeof v?.seq !== 'number') return null;
    return { seq: v.seq, epoch: typeof v.epoch === 'number' ? v.epoch : 0 };
  } catch {
    return null;
  }
}

export function decodeMarker(data: Uint8Array): SnapshotMarker | null {
  const p = decodePosition(data);
  if (p === null) return null;
  const v = JSON.parse(Buffer.from(data).toString('utf8')) as { complete?: unknown; at?: unknown; layout?: unknown };
  return { ...p, complete: v.complete === true, at: typeof v.at === 'number' ? v.at : 0, layout: typeof v.layout === 'number' ? v.layout : 1 };
}

export function decodeHeartbeat(data: Uint8Array): Heartbeat | null {
  const p = decodePosition(data);
  if (p === null) return null;
  const v = JSON.parse(Buffer.from(data).toString('utf8')) as { at?: unknown };
  return typeof v.at === 'number' && Number.isFinite(v.at) ? { ...p, at: v.at } : null;
}

export const encodeJson = (v: unknown): Uint8Array => Buffer.from(JSON.stringify(v));
