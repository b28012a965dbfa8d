/** Cursor pages over PostgreSQL: the same rules as the sqlite store's (ids in bytewise order, paging.ts). */
import { takePage } from '../paging.js';
import type { Page, PageQuery } from '../types.js';
import type { PgDb } from './db.js';

/** WHERE conditions with positional parameters. */
export class Where {
  readonly cond: string[] = [];
  readonly params: unknown[] = [];

  add(sql: (p: string) => string, value: unknown): this {
    this.params.push(value);
    this.cond.push(sql(`$${this.params.length}`));
    return this;
  }

  /** The account's rows, and a case-insensitive substring of the name when asked. */
  static account(accountId: string, name?: string | null): Where {
    const w = new Where().add((p) => `account_id = ${p}`, accountId);
    if (name) w.add((p) => `strpos(lower(name), ${p}) > 0`, name.toLowerCase());
    return w;
  }

  get sql(): string {
    return this.cond.length === 0 ? 'TRUE' : this.cond.join(' AND ');
  }
}

export async function pageOf<R extends object, T>(db: PgDb, table: string, where: Where, query: PageQuery, map: (r: R) => T): Promise<Page<T>> {
  return db.readConsistent(async (q) => {
    const w = new Where();
    w.cond.push(...where.cond);
    w.params.push(...where.params);
    if (query.startingAfter) w.add((p) => `id > ${p}`, query.startingAfter);
    w.params.push(query.limit + 1);
    const all = await q<R & Record<string, unknown>>(`SELECT * FROM ${table} WHERE ${w.sql} ORDER BY id LIMIT $${w.params.length}`, w.params);
    const { rows, hasMore } = takePage<R>(all, query);
    const total = query.includeTotalCount === false ? null : Number((await q<{ n: number }>(`SELECT count(*)::bigint AS n FROM ${table} WHERE ${where.sql}`, where.params))[0]!.n);
    return { items: rows.map(map), hasMore, totalCount: total };
  });
}
