/**
 * The PostgreSQL connection pool and the one way a write runs: a transaction that takes the
 * account's advisory lock first (so count-then-insert quotas and name checks of one account
 * never race between replicas), does its work, then takes the feed lock and appends its
 * change records with seq = max + 1. The feed lock is held until COMMIT, so seq order is
 * commit order and seqs have no gaps (a rolled-back write takes none).
 */
import pg from 'pg';
import { EventEmitter } from 'node:events';
import type { ChangeRecord } from '../change-feed.js';
import { StorageUnavailable, storageFault } from '../types.js';
import { LOCK } from './schema.js';

/** A change record before it has its seq. */
export type PendingChange = ChangeRecord extends infer C ? (C extends ChangeRecord ? Omit<C, 'seq'> : never) : never;

/** BIGINT (int8) columns as numbers: every stored integer (ms times, counts, seqs) is far below 2^53. */
const TYPES = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === 20) return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format);
  },
} as unknown as pg.CustomTypesConfig;

/** How long a write that failed on storage keeps /readyz unready, unless a write succeeds first. */
const WRITE_FAULT_HOLD_MS = 10_000;
const PROBE_EVERY_MS = 1000;

/** The storage fault behind a pg error (connection lost, server down or refusing), or null. */
export function pgFault(e: unknown): StorageUnavailable | null {
  const f = storageFault(e);
  if (f) return f;
  const msg = (e as Error | null)?.message ?? '';
  if (/Connection terminated|connection error|Connection ended|timeout exceeded when trying to connect|Query read timeout|not queryable|terminating connection/i.test(msg)) {
    return new StorageUnavailable(`the database server cannot be reached (${msg})`, 'PG_CONNECTION');
  }
  return null;
}

export type Query = <R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]) => Promise<R[]>;

export class PgDb {
  readonly pool: pg.Pool;
  private readonly commits = new EventEmitter();
  private writeFault: { at: number; reason: string } | null = null;
  private lastProbe = { at: 0, why: null as string | null };

  constructor(
    url: string,
    readonly changeLogKeep: number,
    max = 10,
  ) {
    this.pool = new pg.Pool({
      connectionString: url,
      max,
      types: TYPES,
      connectionTimeoutMillis: 3000,
      query_timeout: 15_000,
      idleTimeoutMillis: 30_000,
      application_name: 'egress-gateway',
    });
    // An idle connection dropped by the server is an error event; it must never crash the process.
    this.pool.on('error', () => {});
    this.commits.setMaxListeners(0);
  }

  onCommit(listener: () => void): () => void {
    this.commits.on('commit', listener);
    return () => this.commits.off('commit', listener);
  }

  /** A read outside a transaction; a storage fault becomes StorageUnavailable. */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<R[]> {
    try {
      return (await this.pool.query<R>(sql, params)).rows;
    } catch (e) {
      throw pgFault(e) ?? e;
    }
  }

  /** Several reads that see one snapshot (REPEATABLE READ, read only). */
  async readConsistent<T>(fn: (q: Query) => Promise<T>): Promise<T> {
    try {
      return await this.transaction('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY', async (q) => fn(q));
    } catch (e) {
      throw pgFault(e) ?? e;
    }
  }

  /**
   * A write: account lock (when given), fn, then its change records on the feed lock, COMMIT.
   * Listeners hear of it after COMMIT.
   */
  async write<T>(account: string | null, fn: (q: Query, changes: PendingChange[]) => Promise<T>): Promise<T> {
    let logged = false;
    try {
      const out = await this.transaction('BEGIN', async (q) => {
        if (account !== null) await q('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK.account, account]);
        const changes: PendingChange[] = [];
        const r = await fn(q, changes);
        if (changes.length > 0) {
          await q('SELECT pg_advisory_xact_lock($1, 0)', [LOCK.feed]);
          const [top] = await q<{ seq: number }>('SELECT coalesce(max(seq), 0)::bigint AS seq FROM change_log');
          let s = Number(top!.seq);
          for (const c of changes) {
            s++;
            await q('INSERT INTO change_log (seq, kind, id, account_id, host_id, value) VALUES ($1, $2, $3, $4, $5, $6)', [s, c.kind, c.id, c.accountId, c.kind === 'devbox' ? c.hostId : null, c.value === null ? null : JSON.stringify(c.value)]);
          }
          // A bounded window: a reader further behind takes a snapshot.
          await q('DELETE FROM change_log WHERE seq <= $1', [s - this.changeLogKeep]);
          logged = true;
        }
        return r;
      });
      this.writeFault = null;
      if (logged) this.commits.emit('commit');
      return out;
    } catch (e) {
      const fault = pgFault(e);
      if (fault) this.writeFault = { at: Date.now(), reason: fault.reason };
      throw fault ?? e;
    }
  }

  private async transaction<T>(begin: string, fn: (q: Query) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (e) {
      throw pgFault(e) ?? e;
    }
    const q: Query = async (sql, params = []) => (await client.query(sql, params)).rows;
    let broken = false;
    try {
      await client.query(begin);
      const out = await fn(q);
      await client.query('COMMIT');
      return out;
    } catch (e) {
      broken = pgFault(e) !== null;
      if (!broken)
        await client.query('ROLLBACK').catch(() => {
          broken = true;
        });
      throw e;
    } finally {
      client.release(broken);
    }
  }

  /** Null when a small write commits now (probed at most once a second), else why not. */
  async probeWritable(): Promise<string | null> {
    const now = Date.now();
    if (this.writeFault !== null && now - this.writeFault.at < WRITE_FAULT_HOLD_MS) return this.writeFault.reason;
    if (now - this.lastProbe.at < PROBE_EVERY_MS) return this.lastProbe.why;
    let why: string | null = null;
    try {
      await this.pool.query(`INSERT INTO meta (key, value) VALUES ('ready_probe', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, [String(now)]);
    } catch (e) {
      why = pgFault(e)?.reason ?? (e as Error).message;
    }
    this.lastProbe = { at: Date.now(), why };
    return why;
  }

  async close(): Promise<void> {
    this.commits.removeAllListeners();
    await this.pool.end().catch(() => {});
  }
}

/** A unique-constraint violation (SQLSTATE 23505), with the constraint's name. */
export function uniqueViolation(e: unknown): string | null {
  const err = e as { code?: string; constraint?: string };
  return err?.code === '23505' ? (err.constraint ?? '') : null;
}
