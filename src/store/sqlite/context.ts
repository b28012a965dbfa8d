/** What the sqlite store hands its agent repositories: the connection, its write transaction, its pages. */
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
