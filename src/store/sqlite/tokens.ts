/** API tokens in sqlite (hashes only). */
import { newApiToken, plausibleToken, tokenByRef, touchDue } from '../api-tokens.js';
import type { TokenRepository } from '../backend.js';
import { newId } from '../ids.js';
import { type TokenRow, toTokenInfo } from '../rows.js';
import { type ConfiguredToken, type TokenInfo, type TokenOrigin, DEFAULT_ACCOUNT, hashToken, tokenPrefix } from '../types.js';
import type { SqliteContext, Sync } from './context.js';

export class SqliteTokens implements Sync<TokenRepository> {
  private readonly q;
  /** Token id → when this process last recorded its use (or tried to). */
  private readonly touched = new Map<string, number>();

  constructor(private readonly ctx: SqliteContext) {
    const p = (sql: string) => ctx.db.prepare(sql);
    this.q = {
      byHash: p('SELECT * FROM api_tokens WHERE token_hash = ?'),
      count: p('SELECT count(*) FROM api_tokens').pluck(),
      insert: p(`INSERT INTO api_tokens (id, token_hash, prefix, account_id, origin, create_time_ms)
                 VALUES (@id, @hash, @prefix, @account, @origin, @now)`),
      upsertConfigured: p(`INSERT INTO api_tokens (id, token_hash, prefix, account_id, origin, create_time_ms)
                 VALUES (@id, @hash, @prefix, @account, 'configured', @now)
                 ON CONFLICT (token_hash) DO UPDATE SET account_id = excluded.account_id, origin = 'configured', prefix = excluded.prefix`),
      configured: p(`SELECT token_hash FROM api_tokens WHERE origin = 'configured'`).pluck(),
      delete: p('DELETE FROM api_tokens WHERE token_hash = ?'),
      all: p('SELECT * FROM api_tokens ORDER BY create_time_ms, id'),
      touch: p('UPDATE api_tokens SET last_used_ms = ? WHERE id = ?'),
    };
  }

  ensure(configured: readonly ConfiguredToken[]): string | null {
    return this.ctx.write(() => {
      const now = Date.now();
      const keep = new Set<string>();
      for (const t of configured) {
        const hash = hashToken(t.token);
        keep.add(hash);
        this.q.upsertConfigured.run({ id: newId('tok_', now), hash, prefix: tokenPrefix(t.token), account: t.accountId, now });
      }
      // The configured tokens are exactly the set given: one taken out stops working, also the last.
      for (const h of this.q.configured.all() as string[]) if (!keep.has(h)) this.q.delete.run(h);
      if (configured.length > 0 || (this.q.count.get() as number) > 0) return null;
      return this.insert(DEFAULT_ACCOUNT, 'first-start', now).token;
    });
  }

  private insert(accountId: string, origin: TokenOrigin, now: number): { token: string; info: TokenInfo } {
    const token = newApiToken();
    const row = { id: newId('tok_', now), hash: hashToken(token), prefix: tokenPrefix(token), account: accountId, origin, now };
    this.q.insert.run(row);
    return { token, info: { id: row.id, prefix: row.prefix, accountId, origin, createTimeMs: now, lastUsedMs: null } };
  }

  accountFor(token: string): string | null {
    if (!plausibleToken(token)) return null;
    const row = this.q.byHash.get(hashToken(token)) as TokenRow | undefined;
    if (!row) return null;
    const now = Date.now();
    if (touchDue(row, this.touched, now)) {
      try {
        this.q.touch.run(now, row.id);
      } catch {
        // read-only, full or busy: the time is informational (a full disk must not lock the API)
      }
    }
    return row.account_id;
  }

  list(): TokenInfo[] {
    return (this.q.all.all() as TokenRow[]).map(toTokenInfo);
  }

  create(accountId: string): { token: string; info: TokenInfo } {
    return this.ctx.write(() => this.insert(accountId, 'created', Date.now()));
  }

  revoke(ref: string): TokenInfo {
    return this.ctx.write(() => {
      const row = tokenByRef(this.q.all.all() as TokenRow[], ref);
      this.q.delete.run(row.token_hash);
      this.touched.delete(row.id);
      return toTokenInfo(row);
    });
  }
}
