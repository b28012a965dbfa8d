/** The change feed over sqlite's change_log (the outbox each write appends to in its transaction). */
import type { Devbox, NetworkPolicy } from '../../policy/model.js';
import { type AgentSnapshot, type ChangeFeed, type ChangeRecord, toChangeRecord } from '../change-feed.js';
import { type PolicyRow, toPolicy } from '../rows.js';
import type { SqliteAgents } from './agents.js';
import type { SqliteContext, Sync } from './context.js';

export class SqliteFeed implements Sync<ChangeFeed> {
  private readonly q;

  constructor(
    private readonly ctx: SqliteContext,
    /** Running devboxes and active builds, as the engine sees them. */
    private readonly running: () => Devbox[],
    private readonly agents: SqliteAgents,
  ) {
    const p = (sql: string) => ctx.db.prepare(sql);
    this.q = {
      since: p('SELECT seq, kind, id, account_id, value, host_id FROM change_log WHERE seq > ? ORDER BY seq LIMIT ?'),
      maxSeq: p('SELECT coalesce(max(seq), 0) FROM change_log').pluck(),
      allPolicies: p('SELECT * FROM network_policies ORDER BY id'),
    };
  }

  changesSince(after: number, limit: number): ChangeRecord[] {
    const rows = this.q.since.all(after, limit) as { seq: number; kind: string; id: string; account_id: string; value: string | null; host_id: string | null }[];
    return rows.map(toChangeRecord);
  }

  lastSeq(): number {
    return this.q.maxSeq.get() as number;
  }

  snapshot(): { seq: number; policies: NetworkPolicy[]; devboxes: Devbox[]; agents: AgentSnapshot } {
    const read = this.ctx.db.transaction(() => ({
      seq: this.q.maxSeq.get() as number,
      policies: (this.q.allPolicies.all() as PolicyRow[]).map(toPolicy),
      devboxes: this.running(),
      agents: this.agents.snapshot(),
    }));
    return read.deferred();
  }
}
