/**
 * A page's rows, the same on both backends: at most `limit` rows in id order, and fewer when
 * `maxBytes` is set and the rows' stored size would pass it (always at least one row, so a
 * reader paging on `starting_after` never stalls).
 */
import { type PageQuery, rowBytes } from './types.js';

/** Takes rows (read with LIMIT limit + 1) up to the page's limit and byte budget. */
export function takePage<R>(rows: Iterable<R>, query: PageQuery): { rows: R[]; hasMore: boolean } {
  const out: R[] = [];
  let bytes = 0;
  for (const r of rows) {
    if (out.length < query.limit && query.maxBytes !== undefined) {
      bytes += rowBytes(r);
      if (out.length > 0 && bytes > query.maxBytes) return { rows: out, hasMore: true };
    }
    out.push(r);
  }
  return { rows: out.slice(0, query.limit), hasMore: out.length > query.limit };
}
