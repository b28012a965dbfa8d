/**
 * A list page's byte budget (store/paging.ts) is the same rule on both backends: a page stops
 * before the row that would pass the budget and says has_more, always holds at least one row
 * (a row larger than the budget still comes back, so a reader paging on starting_after never
 * stalls), and paging on through cut pages yields every row once, in id order.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, type Backend, openBackend } from '../support/backends.js';
import { sharedPostgres } from '../support/postgres.js';

beforeAll(async () => {
  await sharedPostgres();
}, 120_000);

const open = (backend: Backend) => openBackend(backend, 'pagebytes');

describe.each(BACKENDS)('the page byte budget on %s', (backend) => {
  it('cuts a page before the row that passes the budget, never below one row, and pages on through every row', async () => {
    const s = await open(backend);
    try {
      // Each row stores over 1000 bytes of text: two never fit in 1500.
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await s.policies.create('acct', { name: `p${i}`, description: 'x'.repeat(1000) })).id);
      ids.sort();

      const whole = await s.policies.list('acct', { limit: 10 });
      expect(whole.items.map((p) => p.id)).toEqual(ids);
      expect(whole.hasMore).toBe(false);

      const tiny = await s.policies.list('acct', { limit: 10, maxBytes: 100 });
      expect(tiny.items.map((p) => p.id)).toEqual([ids[0]]);
      expect(tiny.hasMore).toBe(true);
      expect(tiny.totalCount).toBe(5);

      const seen: string[] = [];
      let after: string | null = null;
      for (let pages = 0; pages < 10; pages++) {
        const page = await s.policies.list('acct', { limit: 10, maxBytes: 1500, startingAfter: after });
        expect(page.items).toHaveLength(1);
        seen.push(page.items[0]!.id);
        after = page.items[0]!.id;
        if (!page.hasMore) break;
      }
      expect(seen).toEqual(ids);

      // A budget the whole list fits in cuts nothing.
      const roomy = await s.policies.list('acct', { limit: 3, maxBytes: 1_000_000 });
      expect(roomy.items.map((p) => p.id)).toEqual(ids.slice(0, 3));
      expect(roomy.hasMore).toBe(true);
    } finally {
      await s.close();
    }
  });
});
