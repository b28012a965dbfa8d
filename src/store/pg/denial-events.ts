/** The per-devbox denial record in PostgreSQL: batch upserts, expiry and a per-devbox cap. */
import type { DenialEventRepository } from '../backend.js';
import { newId } from '../ids.js';
import type { DenialEvent } from '../types.js';
import type { PgDb } from './db.js';
import { Where, pageOf } from './page.js';

export function pgDenialEvents(db: PgDb): DenialEventRepository {
  return {
    write: (rows, limits) =>
      db.write(null, async (q) => {
        const devboxes = new Set<string>();
        for (const r of rows) {
          await q(
            `INSERT INTO egress_events (id, account_id, devbox_id, policy_id, host, port, door, reason, decision, count, first_seen_ms, last_seen_ms)
          VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
          ON CONFLICT (devbox_id, host, port, door, reason, decision) DO UPDATE SET
            count = egress_events.count + excluded.count, last_seen_ms = greatest(egress_events.last_seen_ms, excluded.last_seen_ms), policy_id = excluded.policy_id`,
            [newId('evt_', r.firstSeenMs), r.accountId, r.devboxId, r.policyId, r.host, r.port, r.door, r.reason, r.decision, r.count, r.firstSeenMs, r.lastSeenMs],
          );
          devboxes.add(r.devboxId);
        }
        await q('DELETE FROM egress_events WHERE last_seen_ms < $1', [limits.now - limits.retentionMs]);
        for (const d of devboxes) {
          await q(
            `DELETE FROM egress_events WHERE devbox_id = $1 AND id NOT IN
          (SELECT id FROM egress_events WHERE devbox_id = $1 ORDER BY last_seen_ms DESC, id DESC LIMIT $2)`,
            [d, limits.maxPerDevbox],
          );
        }
      }),

    list(accountId, query) {
      const w = Where.account(accountId);
      if (query.devboxId) w.add((p) => `devbox_id = ${p}`, query.devboxId);
      if (query.decision) w.add((p) => `decision = ${p}`, query.decision);
      if (query.sinceMs != null) w.add((p) => `last_seen_ms >= ${p}`, query.sinceMs);
      return pageOf<DenialEvent, DenialEvent>(db, 'egress_events', w, query, (r) => r);
    },
  };
}
