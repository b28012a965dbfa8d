/**
 * The sidecar's last good snapshot, kept in its local sqlite file (--db): the same tables the
 * store reads, so the engine and the doors run unchanged on it, plus `fleet_entries` (the
 * bucket entry each row came from, to diff a resync and to refuse an older entry) and four
 * `meta` rows (revision, seq, epoch, and the time of the newest control-plane heartbeat applied).
 * Agent entries fill the store's `secrets` (sealed, as the control plane stored them),
 * `agent_configs` and `agent_tokens` tables, so the store's CredentialSource serves the agent
 * gateway and MCP hub doors here as on the control plane. Each write is one transaction and logs its changes in
 * `change_log`; the caller then has the store re-read the log, which raises the change events
 * that re-decide and cut open tunnels, exactly as an API write does.
 */
import Database from 'better-sqlite3';
import type { AgentGatewayConfig, McpConfig } from '../policy/credentials.js';
import type { Devbox, NetworkPolicy } from '../policy/model.js';
import type { AgentTokenRow, SecretRow } from '../store/agents.js';
import { type AgentEntry, type FleetEntry, comparePosition } from './keys.js';

export interface SnapshotState {
  revision: number;
  seq: number;
  /** The fleet epoch it was last relisted in (0: never, or before epochs). */
  epoch: number;
  /** The `at` of the newest control-plane heartbeat applied (ms since the epoch); 0: none yet. */
  currentAt: number;
  /** The bucket's stream (its creation time) the revisions below belong to; '' before the first relist. */
  bucket: string;
  /** Per watched range, the newest KV revision delivered: a reconnect resumes each from here + 1. */
  revs: Record<WatchSource, number>;
}

export type WatchSource = 'policy' | 'host' | 'agent';

/** A bucket entry with the KV revision it was read at. */
export interface Revised {
  revision: number;
  entry: FleetEntry;
  /** The watch it came from (its resume point moves). */
  source?: WatchSource;
}

const key = (e: FleetEntry) => `${e.kind}:${e.id}`;

export class LocalSnapshot {
  private readonly db: Database.Database;
  private readonly q;

  constructor(path: string) {
    this.db = new Database(path, { timeout: 5000 });
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('foreign_keys = ON');
    this.db.exec(`CREATE TABLE IF NOT EXISTS fleet_entries (
      key  TEXT PRIMARY KEY,
      json TEXT NOT NULL
    )`);
    const p = (sql: string) => this.db.prepare(sql);
    this.q = {
      entries: p('SELECT key, json FROM fleet_entries'),
      entry: p('SELECT json FROM fleet_entries WHERE key = ?').pluck(),
      setEntry: p('INSERT INTO fleet_entries (key, json) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET json = excluded.json'),
      dropEntry: p('DELETE FROM fleet_entries WHERE key = ?'),
      meta: p(`SELECT value FROM meta WHERE key = ?`).pluck(),
      setMeta: p(`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`),
      putPolicy: p(`INSERT OR REPLACE INTO network_policies (id, account_id, name, description, egress, enforcement, version, create_time_ms, update_time_ms)
                    VALUES (@id, @account_id, @name, @description, @egress, @enforcement, @version, @create_time_ms, @update_time_ms)`),
      dropPolicy: p('DELETE FROM network_policies WHERE id = ?'),
      putDevbox: p(`INSERT OR REPLACE INTO devboxes (id, account_id, name, status, network_policy_id, addresses, metadata, tunnel_key, password_hash, create_time_ms, end_time_ms, blueprint_id)
                    VALUES (@id, @account_id, @name, @status, @network_policy_id, @addresses, @metadata, @tunnel_key, @password_hash, @create_time_ms, @end_time_ms, @blueprint_id)`),
      dropDevbox: p('DELETE FROM devboxes WHERE id = ?'),
      dropAddresses: p('DELETE FROM running_addresses WHERE devbox_id = ?'),
      putAddress: p('INSERT OR REPLACE INTO running_addresses (address, devbox_id) VALUES (?, ?)'),
      logChange: p('INSERT INTO change_log (kind, id, account_id) VALUES (?, ?, ?)'),
      // A name held by another id (deleted and created again, its tombstone not applied yet) gives way.
      putSecret: p(`INSERT OR REPLACE INTO secrets (id, account_id, name, ciphertext, create_time_ms, update_time_ms)
                    VALUES (@id, @account_id, @name, @ciphertext, @create_time_ms, @update_time_ms)`),
      dropSecret: p('DELETE FROM secrets WHERE id = ?'),
      putConfig: p(`INSERT OR REPLACE INTO agent_configs (id, kind, account_id, name, endpoint, auth_mechanism, custom_headers, allowed_tools, description, create_time_ms, update_time_ms)
                    VALUES (@id, @kind, @account_id, @name, @endpoint, @auth_mechanism, @custom_headers, @allowed_tools, @description, @create_time_ms, @create_time_ms)`),
      dropConfig: p('DELETE FROM agent_configs WHERE id = ?'),
      putToken: p(`INSERT OR REPLACE INTO agent_tokens (id, token_hash, kind, account_id, devbox_id, config_id, secret_id, env_name, create_time_ms)
                   VALUES (@id, @token_hash, @kind, @account_id, @devbox_id, @config_id, @secret_id, @env_name, @create_time_ms)`),
      dropToken: p('DELETE FROM agent_tokens WHERE id = ?'),
    };
  }

  state(): SnapshotState {
    const n = (k: string) => Number(this.q.meta.get(k) ?? 0) || 0;
    return {
      revision: n('fleet_revision'),
      seq: n('fleet_seq'),
      epoch: n('fleet_epoch'),
      currentAt: n('fleet_current_ms'),
      bucket: String(this.q.meta.get('fleet_bucket') ?? ''),
      revs: { policy: n('fleet_rev_policy'), host: n('fleet_rev_host'), agent: n('fleet_rev_agent') },
    };
  }

  /** Ever synced: something to enforce (an empty fleet included). */
  synced(): boolean {
    const s = this.state();
    return s.epoch > 0 || s.revision > 0 || s.currentAt > 0;
  }

  /**
   * Applies entries in order, in one transaction. An entry from an epoch before the snapshot's,
   * or not newer (epoch, seq) than the entry held for its key, is refused: within an epoch a
   * key never goes back. Returns the rows changed and the entries refused.
   */
  apply(batch: readonly Revised[]): { changed: number; refused: number } {
    if (batch.length === 0) return { changed: 0, refused: 0 };
    const tx = this.db.transaction(() => {
      let changed = 0;
      let refused = 0;
      let { revision, seq, epoch, revs } = this.state();
      for (const b of batch) {
        revision = Math.max(revision, b.revision);
        if (b.source !== undefined) revs = { ...revs, [b.source]: Math.max(revs[b.source], b.revision) };
        const held = this.q.entry.get(key(b.entry)) as string | undefined;
        const heldAt = held === undefined ? { epoch, seq: 0 } : (JSON.parse(held) as FleetEntry);
        if (b.entry.epoch < epoch || comparePosition(b.entry, { epoch: heldAt.epoch ?? 0, seq: heldAt.seq }) <= 0) {
          refused++;
          continue;
        }
        changed += this.write(b.entry);
        if (b.entry.epoch === epoch) seq = Math.max(seq, b.entry.seq);
      }
      this.mark(revision, seq, epoch);
      this.markRevs(revs);
      return { changed, refused };
    });
    return tx.immediate();
  }

  /**
   * Makes the snapshot exactly `entries` (a resync read whole), in one transaction: rows not
   * in it go, rows whose entry differs are rewritten, the rest stay untouched.
   */
  replace(entries: readonly FleetEntry[], revision: number, epoch: number, seqAt: number, keep: ReadonlySet<string> = new Set(), at?: { bucket: string; revs: Record<WatchSource, number> }): number {
    const tx = this.db.transaction(() => {
      const had = new Map((this.q.entries.all() as { key: string; json: string }[]).map((r) => [r.key, r.json]));
      let changed = 0;
      let seq = seqAt;
      // `keep`: names whose bucket value was refused (forged): what the snapshot holds for them stays.
      const kept = new Set<string>(keep);
      for (const e of entries) {
        kept.add(key(e));
        seq = Math.max(seq, e.seq);
        const json = JSON.stringify(e);
        const prev = had.get(key(e));
        if (prev === json) continue;
        // Within one epoch a key never goes back (a replayed older value, even genuinely signed).
        if (prev !== undefined && (JSON.parse(prev) as FleetEntry).epoch === e.epoch && (JSON.parse(prev) as FleetEntry).seq > e.seq) continue;
        // Republished under a new epoch with the same value: only its position changes.
        if (prev !== undefined && JSON.stringify((JSON.parse(prev) as FleetEntry).value) === JSON.stringify(e.value)) this.q.setEntry.run(key(e), json);
        else changed += this.write(e);
      }
      for (const [k, json] of had) {
        if (kept.has(k)) continue;
        const old = JSON.parse(json) as FleetEntry;
        changed += this.write({ ...old, value: null } as FleetEntry);
      }
      this.mark(revision, seq, epoch);
      if (at) {
        this.q.setMeta.run('fleet_bucket', at.bucket);
        this.markRevs(at.revs);
      }
      return changed;
    });
    return tx.immediate();
  }

  private markRevs(revs: Record<WatchSource, number>): void {
    this.q.setMeta.run('fleet_rev_policy', String(revs.policy));
    this.q.setMeta.run('fleet_rev_host', String(revs.host));
    this.q.setMeta.run('fleet_rev_agent', String(revs.agent));
  }

  /** Records the newest control-plane heartbeat applied (its `at`): the snapshot was current then. */
  heartbeat(at: number): void {
    this.q.setMeta.run('fleet_current_ms', String(at));
  }

  private mark(revision: number, seq: number, epoch: number): void {
    this.q.setMeta.run('fleet_revision', String(revision));
    this.q.setMeta.run('fleet_seq', String(seq));
    this.q.setMeta.run('fleet_epoch', String(epoch));
  }

  /** One entry into the store's tables; 1 when it changed something. */
  private write(e: FleetEntry): number {
    const k = key(e);
    const json = JSON.stringify(e);
    if (e.kind === 'policy') {
      if (e.value === null) this.q.dropPolicy.run(e.id);
      else this.putPolicy(e.value);
    } else if (e.kind !== 'devbox') {
      this.writeAgent(e);
    } else {
      this.q.dropAddresses.run(e.id);
      if (e.value === null) this.q.dropDevbox.run(e.id);
      else this.putDevbox(e.value);
    }
    if (e.value === null) this.q.dropEntry.run(k);
    else this.q.setEntry.run(k, json);
    this.q.logChange.run(e.kind, e.id, e.account_id);
    return 1;
  }

  /** An agent entry into the store's tables (only under its own id and account: never another row's). */
  private writeAgent(e: AgentEntry): void {
    switch (e.kind) {
      case 'secret':
        if (e.value === null) this.q.dropSecret.run(e.id);
        else this.putSecret({ ...e.value, id: e.id, account_id: e.account_id });
        break;
      case 'gateway_config':
      case 'mcp_config':
        if (e.value === null) this.q.dropConfig.run(e.id);
        else this.putConfig(e.kind === 'mcp_config' ? 'mcp' : 'gateway', { ...e.value, id: e.id, account_id: e.account_id });
        break;
      case 'agent_token':
        if (e.value === null) this.q.dropToken.run(e.id);
        else this.q.putToken.run({ ...pick(e.value), id: e.id, account_id: e.account_id });
        break;
    }
  }

  private putSecret(s: SecretRow): void {
    this.q.putSecret.run({ id: s.id, account_id: s.account_id, name: s.name, ciphertext: s.ciphertext, create_time_ms: s.create_time_ms, update_time_ms: s.update_time_ms });
  }

  private putConfig(kind: 'gateway' | 'mcp', c: AgentGatewayConfig | McpConfig): void {
    this.q.putConfig.run({
      id: c.id,
      kind,
      account_id: c.account_id,
      name: c.name,
      endpoint: c.endpoint,
      auth_mechanism: JSON.stringify(c.auth_mechanism),
      custom_headers: JSON.stringify(c.custom_headers),
      allowed_tools: kind === 'mcp' ? JSON.stringify((c as McpConfig).allowed_tools ?? []) : null,
      description: c.description,
      create_time_ms: c.create_time_ms,
    });
  }

  private putPolicy(p: NetworkPolicy): void {
    this.q.putPolicy.run({
      id: p.id,
      account_id: p.account_id,
      name: p.name,
      description: p.description,
      egress: JSON.stringify(p.egress),
      enforcement: p.enforcement,
      version: p.version,
      create_time_ms: p.create_time_ms,
      update_time_ms: p.update_time_ms,
    });
  }

  private putDevbox(d: Devbox): void {
    this.q.putDevbox.run({
      id: d.id,
      account_id: d.account_id,
      name: d.name,
      status: d.status,
      network_policy_id: d.network_policy_id,
      addresses: JSON.stringify(d.addresses),
      metadata: JSON.stringify(d.metadata),
      tunnel_key: d.tunnel_key,
      password_hash: d.password_hash,
      create_time_ms: d.create_time_ms,
      end_time_ms: d.end_time_ms,
      blueprint_id: d.blueprint_id ?? null,
    });
    if (d.status === 'running') for (const a of d.addresses) this.q.putAddress.run(a, d.id);
  }

  close(): void {
    this.db.close();
  }
}

function pick(t: AgentTokenRow): Omit<AgentTokenRow, 'id' | 'account_id'> {
  return { token_hash: t.token_hash, kind: t.kind, devbox_id: t.devbox_id, config_id: t.config_id, secret_id: t.secret_id, env_name: t.env_name, create_time_ms: t.create_time_ms };
}
