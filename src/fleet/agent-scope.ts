/**
 * Per-host scope of the agent resources (issue 21), beside host-scope.ts's policies: a host's
 * sidecar receives, under `agent.<host>.…` (keys.ts), the agent tokens of the running devboxes
 * placed on it (their hash only), the gateway and MCP configs those tokens name (the system
 * configs are built into every process and never published), and the secrets those tokens and
 * those configs' custom headers reference, as their sealed rows. Nothing of another account
 * (a token, config or secret whose account disagrees with its devbox's is left out, as the
 * doors would refuse it) and nothing of another host.
 *
 * The publisher keeps this index in memory, built from a snapshot and moved forward by every
 * change record in seq order, like HostScope. Each record names the hosts it may affect (the
 * devbox's host before and after, the token's devbox's host, the hosts holding the secret or
 * config); what those hosts should hold is recomputed from their devboxes' tokens and diffed
 * against what they hold, giving the keys to write and the keys to tombstone. The feed carries
 * no record for a token deleted with its devbox, config or secret: those are dropped here, as
 * every follower does (followed-credentials.ts).
 */
import type { AgentGatewayConfig, McpConfig } from '../policy/credentials.js';
import type { Devbox } from '../policy/model.js';
import type { AgentTokenRow, SecretRow } from '../store/agents.js';
import { SYSTEM_GATEWAY_CONFIGS } from '../store/agents.js';
import type { AgentChangeKind, AgentSnapshot, ChangeRecord } from '../store/change-feed.js';
import { type AgentEntry, agentKey, hostOf } from './keys.js';

/** An agent entry without its position (the publisher adds seq and epoch). */
export type AgentValue = Omit<AgentEntry, 'seq' | 'epoch'>;

export interface AgentChanges {
  /** Secrets and configs before the tokens naming them. */
  put: Array<{ key: string; value: AgentValue }>;
  /** Tokens before the configs and secrets they named. */
  drop: Array<{ key: string; value: AgentValue }>;
}

interface Held {
  kind: AgentChangeKind;
  id: string;
  account_id: string;
  json: string;
}

interface Placed {
  host: string;
  account: string;
}

const RANK: Record<AgentChangeKind, number> = { secret: 0, gateway_config: 1, mcp_config: 1, agent_token: 2 };
const SYSTEM_IDS = new Set(SYSTEM_GATEWAY_CONFIGS.map((c) => c.id));

function placedOf(d: Devbox | null, host: string | null): Placed | null {
  return d === null || host === null || d.status !== 'running' ? null : { host, account: d.account_id };
}

export class AgentScope {
  /** Running devboxes placed on a host. */
  private readonly devboxes = new Map<string, Placed>();
  private readonly onHost = new Map<string, Set<string>>();
  private readonly tokens = new Map<string, AgentTokenRow>();
  private readonly tokensOf = new Map<string, Set<string>>();
  private readonly secrets = new Map<string, SecretRow>();
  private readonly gateway = new Map<string, AgentGatewayConfig>();
  private readonly mcp = new Map<string, McpConfig>();
  /** host → key → what the bucket holds there (by this index): its name and its value's JSON. */
  private readonly held = new Map<string, Map<string, Held>>();
  /** `kind:id` → hosts holding it. */
  private readonly holders = new Map<string, Set<string>>();

  static from(snap: { devboxes: Devbox[]; agents?: AgentSnapshot }): AgentScope {
    const s = new AgentScope();
    for (const d of snap.devboxes) s.place(d.id, placedOf(d, hostOf(d)));
    for (const x of snap.agents?.secrets ?? []) s.secrets.set(x.id, x);
    for (const c of snap.agents?.gatewayConfigs ?? []) s.gateway.set(c.id, c);
    for (const c of snap.agents?.mcpConfigs ?? []) s.mcp.set(c.id, c);
    for (const t of snap.agents?.tokens ?? []) s.addToken(t);
    for (const host of s.onHost.keys()) s.settle(host);
    return s;
  }

  /** Every agent key the bucket should hold now, with its value. */
  wanted(): Array<{ key: string; value: AgentValue }> {
    const out: Array<{ key: string; value: AgentValue }> = [];
    for (const host of this.held.keys()) for (const [key, value] of this.want(host)) out.push({ key, value });
    return out.sort((a, b) => RANK[a.value.kind] - RANK[b.value.kind]);
  }

  /** Moves the index past one record; the agent keys to write and to tombstone for it. */
  apply(r: ChangeRecord): AgentChanges {
    const hosts = new Set<string>();
    const holdersOf = (kind: AgentChangeKind, id: string) => {
      for (const h of this.holders.get(`${kind}:${id}`) ?? []) hosts.add(h);
    };
    switch (r.kind) {
      case 'policy':
        return { put: [], drop: [] };
      case 'devbox': {
        const before = this.devboxes.get(r.id);
        const after = placedOf(r.value, r.hostId);
        if (before) hosts.add(before.host);
        if (after) hosts.add(after.host);
        this.place(r.id, after);
        // A devbox that stopped takes its tokens (the store deleted them without a record).
        if (after === null) for (const t of [...(this.tokensOf.get(r.id) ?? [])]) this.dropToken(t);
        break;
      }
      case 'agent_token': {
        const cur = this.tokens.get(r.id);
        if (cur) this.dropToken(r.id);
        if (r.value !== null) this.addToken(r.value);
        const d = this.devboxes.get(r.value?.devbox_id ?? cur?.devbox_id ?? '');
        if (d) hosts.add(d.host);
        break;
      }
      case 'secret':
        holdersOf('secret', r.id);
        if (r.value === null) {
          this.secrets.delete(r.id);
          this.dropTokens((t) => t.secret_id === r.id, hosts);
        } else this.secrets.set(r.id, r.value);
        break;
      case 'gateway_config':
      case 'mcp_config': {
        holdersOf(r.kind, r.id);
        const map: Map<string, AgentGatewayConfig> = r.kind === 'gateway_config' ? this.gateway : this.mcp;
        if (r.value === null) {
          map.delete(r.id);
          this.dropTokens((t) => t.config_id === r.id, hosts);
        } else map.set(r.id, r.value);
        break;
      }
    }
    const out: AgentChanges = { put: [], drop: [] };
    for (const host of hosts) {
      const d = this.settle(host);
      out.put.push(...d.put);
      out.drop.push(...d.drop);
    }
    out.put.sort((a, b) => RANK[a.value.kind] - RANK[b.value.kind]);
    out.drop.sort((a, b) => RANK[b.value.kind] - RANK[a.value.kind]);
    return out;
  }

  private place(id: string, p: Placed | null): void {
    const before = this.devboxes.get(id);
    if (before) this.onHost.get(before.host)?.delete(id);
    if (p === null) {
      this.devboxes.delete(id);
      return;
    }
    this.devboxes.set(id, p);
    let set = this.onHost.get(p.host);
    if (!set) this.onHost.set(p.host, (set = new Set()));
    set.add(id);
  }

  private addToken(t: AgentTokenRow): void {
    this.tokens.set(t.id, t);
    let set = this.tokensOf.get(t.devbox_id);
    if (!set) this.tokensOf.set(t.devbox_id, (set = new Set()));
    set.add(t.id);
  }

  private dropToken(id: string): void {
    const t = this.tokens.get(id);
    if (!t) return;
    this.tokens.delete(id);
    const set = this.tokensOf.get(t.devbox_id);
    set?.delete(id);
    if (set?.size === 0) this.tokensOf.delete(t.devbox_id);
  }

  private dropTokens(match: (t: AgentTokenRow) => boolean, hosts: Set<string>): void {
    for (const t of [...this.tokens.values()]) {
      if (!match(t)) continue;
      this.dropToken(t.id);
      const d = this.devboxes.get(t.devbox_id);
      if (d) hosts.add(d.host);
    }
  }

  /** What `host` should hold: key → value. */
  private want(host: string): Map<string, AgentValue> {
    const out = new Map<string, AgentValue>();
    const secret = (id: string, account: string) => {
      const s = this.secrets.get(id);
      if (s?.account_id !== account) return false;
      out.set(agentKey(host, 'secret', account, id), { kind: 'secret', id, account_id: account, value: s });
      return true;
    };
    for (const devbox of this.onHost.get(host) ?? []) {
      const account = this.devboxes.get(devbox)!.account;
      for (const tid of this.tokensOf.get(devbox) ?? []) {
        const t = this.tokens.get(tid)!;
        if (t.account_id !== account) continue;
        const system = t.kind === 'gateway' && SYSTEM_IDS.has(t.config_id);
        const config = system ? undefined : t.kind === 'gateway' ? this.gateway.get(t.config_id) : this.mcp.get(t.config_id);
        if (!system && config?.account_id !== account) continue;
        const s = this.secrets.get(t.secret_id);
        if (s?.account_id !== account) continue;
        secret(t.secret_id, account);
        if (config) {
          const kind = t.kind === 'gateway' ? 'gateway_config' : 'mcp_config';
          out.set(agentKey(host, kind, account, config.id), { kind, id: config.id, account_id: account, value: config } as AgentValue);
          for (const h of config.custom_headers) if (h.secret_id) secret(h.secret_id, account);
        }
        out.set(agentKey(host, 'agent_token', account, t.id), { kind: 'agent_token', id: t.id, account_id: account, value: t });
      }
    }
    return out;
  }

  /** Recomputes what `host` holds; the keys that changed and the keys that went. */
  private settle(host: string): AgentChanges {
    const want = this.want(host);
    const had = this.held.get(host) ?? new Map<string, Held>();
    const now = new Map<string, Held>();
    const out: AgentChanges = { put: [], drop: [] };
    for (const [key, value] of want) {
      const json = JSON.stringify(value.value);
      now.set(key, { kind: value.kind, id: value.id, account_id: value.account_id, json });
      if (had.get(key)?.json !== json) out.put.push({ key, value });
      this.hold(`${value.kind}:${value.id}`, host, true);
    }
    for (const [key, h] of had) {
      if (now.has(key)) continue;
      out.drop.push({ key, value: { kind: h.kind, id: h.id, account_id: h.account_id, value: null } as AgentValue });
      this.hold(`${h.kind}:${h.id}`, host, false);
    }
    if (now.size > 0) this.held.set(host, now);
    else this.held.delete(host);
    return out;
  }

  private hold(name: string, host: string, on: boolean): void {
    let set = this.holders.get(name);
    if (on) {
      if (!set) this.holders.set(name, (set = new Set()));
      set.add(host);
    } else if (set) {
      set.delete(host);
      if (set.size === 0) this.holders.delete(name);
    }
  }
}
