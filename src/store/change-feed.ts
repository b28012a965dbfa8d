/**
 * The outbox a control plane publishes from (fleet mode, issue #13). Every store write commits
 * one change record per resource it touched in the same transaction; `seq` increases in commit
 * order (a PostgreSQL backend serialises its writers on an advisory lock so that a reader never
 * sees seq N+1 committed before N). Both backends implement this; the NATS publisher reads only it.
 *
 * Agent resources (issue 21) travel the same way: secrets as their sealed row (never a
 * plaintext value), gateway and MCP configs, and minted tokens (their hash, never their text).
 * A token deleted with its devbox, config or secret gets no record of its own: every follower
 * drops the tokens bound to a devbox that stopped running or a config or secret that went.
 */
import type { Devbox, NetworkPolicy } from '../policy/model.js';
import type { AgentGatewayConfig, McpConfig } from '../policy/credentials.js';
import type { AgentTokenRow, SecretRow } from './agents.js';

export type AgentChangeKind = 'secret' | 'gateway_config' | 'mcp_config' | 'agent_token';
export const AGENT_CHANGE_KINDS: readonly AgentChangeKind[] = ['secret', 'gateway_config', 'mcp_config', 'agent_token'];

export type AgentChangeRecord =
  | { seq: number; kind: 'secret'; id: string; accountId: string; value: SecretRow | null }
  | { seq: number; kind: 'gateway_config'; id: string; accountId: string; value: AgentGatewayConfig | null }
  | { seq: number; kind: 'mcp_config'; id: string; accountId: string; value: McpConfig | null }
  | { seq: number; kind: 'agent_token'; id: string; accountId: string; value: AgentTokenRow | null };

export type ChangeRecord = { seq: number; kind: 'policy'; id: string; accountId: string; value: NetworkPolicy | null } | { seq: number; kind: 'devbox'; id: string; accountId: string; hostId: string | null; value: Devbox | null } | AgentChangeRecord;

/** A record of a policy or a devbox (what fleet mode publishes today). */
export type PlaneRecord = Extract<ChangeRecord, { kind: 'policy' | 'devbox' }>;

export function isPlaneRecord(r: ChangeRecord): r is PlaneRecord {
  return r.kind === 'policy' || r.kind === 'devbox';
}

/** Every agent resource as of a snapshot's seq (tokens only of running devboxes). */
export interface AgentSnapshot {
  secrets: SecretRow[];
  gatewayConfigs: AgentGatewayConfig[];
  mcpConfigs: McpConfig[];
  tokens: AgentTokenRow[];
}

export interface ChangeFeed {
  /**
   * Committed changes with seq > after, oldest first, at most `limit`. `value` is the resource as
   * that change left it (null: deleted). Records older than the retained window are gone: when
   * the first record returned is not after+1 (or none is returned while `lastSeq()` > after),
   * the reader has fallen out of the window and must take a `snapshot()`.
   */
  changesSince(after: number, limit: number): Promise<ChangeRecord[]>;
  /** The seq of the newest committed change (0 when there is none). */
  lastSeq(): Promise<number>;
  /** Every policy, every devbox that is not shut down and every agent resource, consistent as of `seq`. */
  snapshot(): Promise<{ seq: number; policies: NetworkPolicy[]; devboxes: Devbox[]; agents?: AgentSnapshot }>;
}

/** A change_log row's value (JSON text) as its record. */
export function toChangeRecord(r: { seq: number; kind: string; id: string; account_id: string; host_id: string | null; value: string | null }): ChangeRecord {
  const v = r.value === null ? null : JSON.parse(r.value);
  const base = { seq: r.seq, id: r.id, accountId: r.account_id };
  if (r.kind === 'devbox') return { ...base, kind: 'devbox', hostId: r.host_id, value: v as Devbox | null };
  return { ...base, kind: r.kind, value: v } as ChangeRecord;
}
