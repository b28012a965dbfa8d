/**
 * The ChangeFeed of a sqlite control plane, read from the store's `change_log` on a read
 * connection of its own. The log records kind/id/account only, so a record's value is the
 * row as it is now (a later state than that change left, never an earlier one: the seq
 * compare in the publisher keeps keys from going back). The PostgreSQL backend's feed
 * carries each change's own value.
 */
import Database from 'better-sqlite3';
import type { Devbox } from '../policy/model.js';
import type { ChangeFeed, ChangeRecord } from '../store/change-feed.js';
import { hostOf } from './keys.js';
import { type DevboxRow, type PolicyRow, toDevbox, toPolicy } from '../store/index.js';

interface LogRow {
  seq: number;
  kind: 'policy' | 'devbox';
  id: string;
  account_id: string;
}

export class SqliteChangeFeed implements ChangeFeed {
  private readonly db: Database.Database;
  private readonly q;

  constructor(path: string) {
    this.db = new Database(path, { readonly: true, timeout: 5000 });
    this.db.pragma('busy_timeout = 5000');
    const p = (sql: string) => this.db.prepare(sql);
    this.q = {
      since: p('SELECT seq, kind, id, account_id FROM change_log WHERE seq > ? ORDER BY seq LIMIT ?'),
      last: p('SELECT coalesce(max(seq), 0) FROM change_log').pluck(),
      policy: p('SELECT * FROM network_policies WHERE id = ?'),
      devbox: p('SELECT * FROM devboxes WHERE id = ?'),
      policies: p('SELECT * FROM network_policies ORDER BY id'),
      devboxes: p(`SELECT * FROM devboxes WHERE status != 'shutdown' ORDER BY id`),
    };
  }

  async changesSince(after: number, limit: number): Promise<ChangeRecord[]> {
    const read = this.db.transaction(() => (this.q.since.all(after, limit) as LogRow[]).flatMap((r) => this.record(r)));
    return read.deferred();
  }

  private record(r: LogRow): ChangeRecord[] {
    if (r.kind === 'policy') {
      const row = this.q.policy.get(r.id) as PolicyRow | undefined;
      return [{ seq: r.seq, kind: 'policy', id: r.id, accountId: r.account_id, value: row ? toPolicy(row) : null }];
    }
    // Blueprint builds (bpt_) share the devbox kind in the log; they are not placed on hosts.
    if (r.id.startsWith('bpt_')) return [{ seq: r.seq, kind: 'devbox', id: r.id, accountId: r.account_id, hostId: null, value: null }];
    const row = this.q.devbox.get(r.id) as (DevboxRow & { host_id?: string | null }) | undefined;
    const value = row ? toDevbox(row) : null;
    if (value && row?.host_id != null) value.host_id = row.host_id;
    return [{ seq: r.seq, kind: 'devbox', id: r.id, accountId: r.account_id, hostId: value ? hostOf(value) : null, value }];
  }

  async lastSeq(): Promise<number> {
    return this.q.last.get() as number;
  }

  async snapshot(): Promise<{ seq: number; policies: ReturnType<typeof toPolicy>[]; devboxes: Devbox[] }> {
    const read = this.db.transaction(() => ({
      seq: this.q.last.get() as number,
      policies: (this.q.policies.all() as PolicyRow[]).map(toPolicy),
      devboxes: (this.q.devboxes.all() as DevboxRow[]).map(toDevbox),
    }));
    return read.deferred();
  }

  close(): void {
    this.db.close();
  }
}
