/**
 * The per-devbox denial record in sqlite: batch upserts, expiry and a per-devbox cap, written
 * on a connection of its own with a short busy timeout. The batch is written from the event
 * loop, so it must not wait seconds for another process's write lock (the recorder retries later).
 */
import Database from 'better-sqlite3';
import type { DenialEventRepository } from '../backend.js';
import { newId } from '../ids.js';
import type { DenialEvent, DenialEventBatchRow, DenialEventQuery, DenialLimits, Page } from '../types.js';
import type { SqliteContext, Sync } from './context.js';

function writer(path: string, main: Database.Database) {
  const db = path === ':memory:' ? main : new Database(path, { timeout: 50 });
  if (db !== main) {
    db.pragma('busy_timeout = 50');
    db.pragma('synchronous = NORMAL');
  }
  const upsert = db.prepare(`INSERT INTO egress_events (id, account_id, devbox_id, policy_id, host, port, door, reason, decision, count, first_seen_ms, last_seen_ms)
    VALUES (@id, @accountId, @devboxId, @policyId, @host, @port, @door, @reason, @decision, @count, @firstSeenMs, @lastSeenMs)
    ON CONFLICT (devbox_id, host, port, door, reason, decision) DO UPDATE SET
      count = count + excluded.count, last_seen_ms = max(last_seen_ms, excluded.last_seen_ms), policy_id = excluded.policy_id`);
  const expire = db.prepare('DELETE FROM egress_events WHERE last_seen_ms < ?');
  const cap = db.prepare(`DELETE FROM egress_events WHERE devbox_id = @devbox AND id NOT IN
    (SELECT id FROM egress_events WHERE devbox_id = @devbox ORDER BY last_seen_ms DESC, id DESC LIMIT @keep)`);
  const tx = db.transaction((rows: readonly DenialEventBatchRow[], limits: DenialLimits) => {
    const devboxes = new Set<string>();
    for (const r of rows) {
      upsert.run({ ...r, id: newId('evt_', r.firstSeenMs) });
      devboxes.add(r.devboxId);
    }
    expire.run(limits.now - limits.retentionMs);
    for (const d of devboxes) cap.run({ devbox: d, keep: limits.maxPerDevbox });
  });
  return {
    write: (rows: readonly DenialEventBatchRow[], limits: DenialLimits) => tx.immediate(rows, limits),
    close: () => {
      if (db !== main) db.close();
    },
  };
}

export class SqliteDenialEvents implements Sync<DenialEventRepository> {
  private writer: ReturnType<typeof writer> | null = null;
  private closed = false;

  constructor(
    private readonly ctx: SqliteContext,
    private readonly path: string,
  ) {}

  /** The denial record's batch write (see DenialRecorder); throws when the file is busy. */
  write(rows: readonly DenialEventBatchRow[], limits: DenialLimits): void {
    if (this.closed) throw new Error('store closed');
    this.writer ??= writer(this.path, this.ctx.db);
    this.writer.write(rows, limits);
  }

  list(accountId: string, query: DenialEventQuery): Page<DenialEvent> {
    const where = ['account_id = @account'];
    const params: Record<string, unknown> = { account: accountId };
    if (query.devboxId) {
      where.push('devbox_id = @devbox');
      params.devbox = query.devboxId;
    }
    if (query.decision) {
      where.push('decision = @decision');
      params.decision = query.decision;
    }
    if (query.sinceMs != null) {
      where.push('last_seen_ms >= @since');
      params.since = query.sinceMs;
    }
    return this.ctx.page<DenialEvent, DenialEvent>('egress_events', where, params, query, (r) => r);
  }

  close(): void {
    this.closed = true;
    this.writer?.close();
  }
}
