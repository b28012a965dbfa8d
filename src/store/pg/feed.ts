/** The change feed over PostgreSQL's change_log (the outbox every write appends to). */
import type { Devbox, NetworkPolicy } from '../../policy/model.js';
import { type BlueprintRow, buildRuntime, toBlueprint } from '../blueprints.js';
import type { ChangeFeed, ChangeRecord } from '../change-feed.js';
import { type DevboxRow, type PolicyRow, toDevbox, toPolicy } from '../rows.js';
import type { PgDb } from './db.js';

interface LogRow {
  seq: number;
  kind: 'policy' | 'devbox';
  id: string;
  account_id: string;
  host_id: string | null;
  value: string | null;
}

function toRecord(r: LogRow): ChangeRecord {
  return r.kind === 'policy'
    ? { seq: r.seq, kind: 'policy', id: r.id, accountId: r.account_id, value: r.value === null ? null : (JSON.parse(r.value) as NetworkPolicy) }
    : { seq: r.seq, kind: 'devbox', id: r.id, accountId: r.account_id, hostId: r.host_id, value: r.value === null ? null : (JSON.parse(r.value) as Devbox) };
}

export function pgFeed(db: PgDb): ChangeFeed {
  return {
    async changesSince(after, limit) {
      return (await db.query<LogRow>('SELECT seq, kind, id, account_id, host_id, value FROM change_log WHERE seq > $1 ORDER BY seq LIMIT $2', [after, limit])).map(toRecord);
    },
    async lastSeq() {
      return Number((await db.query<{ s: number }>('SELECT coalesce(max(seq), 0)::bigint AS s FROM change_log'))[0]!.s);
    },
    // One REPEATABLE READ snapshot: every row it returns is as of `seq` (a write commits its
    // rows and its change records together).
    snapshot: () =>
      db.readConsistent(async (q) => {
        const [{ s }] = (await q<{ s: number }>('SELECT coalesce(max(seq), 0)::bigint AS s FROM change_log')) as [{ s: number }];
        const policies = (await q<PolicyRow>('SELECT * FROM network_policies ORDER BY id')).map(toPolicy);
        const devboxes = (await q<DevboxRow>(`SELECT * FROM devboxes WHERE status = 'running' ORDER BY id`)).map(toDevbox);
        const builds = (await q<BlueprintRow>(`SELECT * FROM blueprints WHERE status IN ('queued', 'provisioning', 'building') ORDER BY id`)).map((b) => buildRuntime(toBlueprint(b)));
        return { seq: Number(s), policies, devboxes: [...devboxes, ...builds] };
      }),
  };
}
