/**
 * The sidecar's last good snapshot, kept in its local sqlite file (--db): the same tables the
 * store reads, so the engine and the doors run unchanged on it, plus `fleet_entries` (the
 * bucket entry each row came from, to diff a resync) and three `meta` rows (revision, seq,
 * when it was last known current). Each write is one transaction and logs its changes in
 * `change_log`; the caller then has the store re-read the log, which raises the change events
 * that re-decide and cut open tunnels, exactly as an API write does.
 */
import Database from 'better-sqlite3';
import type { Devbox, NetworkPolicy } from '../policy/model.js';
import type { FleetEntry } from './keys.js';

export interface SnapshotState {
  revision: number;
  seq: number;
  /** When the snapshot was last known current (ms since the epoch); 0: never synced. */
  currentAt: number;
}

/** A bucket entry with the KV revision it was read at. */
export interface Revised {
  revision: number;
  entry: FleetEntry;
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
    };
  }

  state(): SnapshotState {
    const n = (k: string) => Number(this.q.meta.get(k) ?? 0) || 0;
    return { revision: n('fleet_revision'), seq: n('fleet_seq'), currentAt: n('fleet_current_ms') };
  }

  /** Applies entries in order, in one transaction; returns how many rows changed. */
  apply(batch: readonly Revised[]): number {
    if (batch.length === 0) return 0;
    const tx = this.db.transaction(() => {
      let changed = 0;
      let { revision, seq } = this.state();
      for (const b of batch) {
        changed += this.write(b.entry);
        revision = Math.max(revision, b.revision);
        seq = Math.max(seq, b.entry.seq);
      }
      this.mark(revision, seq);
      return changed;
    });
    return tx.immediate();
  }

  /**
   * Makes the snapshot exactly `entries` (a resync read whole), in one transaction: rows not
   * in it go, rows whose entry differs are rewritten, the rest stay untouched.
   */
  replace(entries: readonly FleetEntry[], revision: number): number {
    const tx = this.db.transaction(() => {
      const had = new Map((this.q.entries.all() as { key: string; json: string }[]).map((r) => [r.key, r.json]));
      let changed = 0;
      let seq = 0;
      const keep = new Set<string>();
      for (const e of entries) {
        keep.add(key(e));
        seq = Math.max(seq, e.seq);
        if (had.get(key(e)) !== JSON.stringify(e)) changed += this.write(e);
      }
      for (const [k, json] of had) {
        if (keep.has(k)) continue;
        const old = JSON.parse(json) as FleetEntry;
        changed += this.write({ ...old, value: null } as FleetEntry);
      }
      this.mark(revision, seq);
      return changed;
    });
    return tx.immediate();
  }

  /** Records that the snapshot is current now (the follower calls it while live). */
  touch(now = Date.now()): void {
    this.q.setMeta.run('fleet_current_ms', String(now));
  }

  private mark(revision: number, seq: number): void {
    this.q.setMeta.run('fleet_revision', String(revision));
    this.q.setMeta.run('fleet_seq', String(seq));
    this.q.setMeta.run('fleet_current_ms', String(Date.now()));
  }

  /** One entry into the store's tables; 1 when it changed something. */
  private write(e: FleetEntry): number {
    const k = key(e);
    const json = JSON.stringify(e);
    if (e.kind === 'policy') {
      if (e.value === null) this.q.dropPolicy.run(e.id);
      else this.putPolicy(e.value);
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
