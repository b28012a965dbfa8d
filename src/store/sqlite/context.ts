/** What the sqlite store hands its repositories: the connection, its write transaction, its pages. */
import type Database from 'better-sqlite3';
import type { SourceChange } from '../../policy/source.js';
import type { AgentChangeRecord } from '../change-feed.js';
import type { SecretBox } from '../secret-box.js';
import type { Page, PageQuery } from '../types.js';

/** A change a write records: policies and devboxes by id (the store reads their value), agent resources with theirs. */
export type StoreChange = SourceChange | Omit<AgentChangeRecord, 'seq'>;

export interface SqliteContext {
  readonly db: Database.Database;
  /** Runs fn in an IMMEDIATE transaction; the changes it pushes are logged in it and announced after COMMIT. */
  write<T>(fn: (changes: StoreChange[]) => T): T;
  /** A cursor page of table's rows matching where (named parameters). */
  page<R, T>(table: string, where: string[], params: Record<string, unknown>, query: PageQuery, map: (r: R) => T): Page<T>;
  /** The secrets key; null: this process cannot seal or open secrets. */
  readonly box: SecretBox | null;
}

/**
 * A repository of backend.ts answered at once: each method returns what the Promise would
 * resolve to (sqlite/control.ts makes it the async repository again).
 */
export type Sync<R> = { [K in keyof R]: R[K] extends (...args: infer A) => Promise<infer T> ? (...args: A) => T : R[K] };

/** A list's WHERE: the account's rows, and a case-insensitive substring of the name when asked. */
export function accountFilter(accountId: string, name: string | null | undefined): { where: string[]; params: Record<string, unknown> } {
  const where = ['account_id = @account'];
  const params: Record<string, unknown> = { account: accountId };
  if (name) {
    where.push('instr(casefold(name), @name) > 0');
    params.name = name.toLowerCase();
  }
  return { where, params };
}

export function isUniqueViolation(e: unknown): boolean {
  const code = (e as { code?: string }).code;
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}
