/** API tokens in PostgreSQL (hashes only); token writes serialise on their own advisory lock. */
import { newApiToken, plausibleToken, tokenByRef, touchDue } from '../api-tokens.js';
import type { TokenRepository } from '../backend.js';
import { newId } from '../ids.js';
import { type TokenInfo, type TokenOrigin, DEFAULT_ACCOUNT, hashToken, tokenPrefix } from '../types.js';
import type { PgDb, Query } from './db.js';
import { LOCK } from './schema.js';
import { type TokenRow, toTokenInfo } from '../rows.js';

async function insertToken(q: Query, accountId: string, origin: TokenOrigin, now: number): Promise<{ token: string; info: TokenInfo }> {
  const token = newApiToken();
  const id = newId('tok_', now);
  await q('INSERT INTO api_tokens (id, token_hash, prefix, account_id, origin, create_time_ms) VALUES ($1, $2, $3, $4, $5, $6)', [id, hashToken(token), tokenPrefix(token), accountId, origin, now]);
  return { token, info: { id, prefix: tokenPrefix(token), accountId, origin, createTimeMs: now, lastUsedMs: null } };
}

export function pgTokens(db: PgDb): TokenRepository {
  /** Token id → when this process last recorded its use. */
  const touched = new Map<string, number>();
  const lock = (q: Query) => q('SELECT pg_advisory_xact_lock($1, 0)', [LOCK.tokens]);
  return {
    ensure: (configured) =>
      db.write(null, async (q) => {
        await lock(q);
        const now = Date.now();
        const keep: string[] = [];
        for (const t of configured) {
          const hash = hashToken(t.token);
          keep.push(hash);
          await q(
            `INSERT INTO api_tokens (id, token_hash, prefix, account_id, origin, create_time_ms) VALUES ($1, $2, $3, $4, 'configured', $5)
          ON CONFLICT (token_hash) DO UPDATE SET account_id = excluded.account_id, origin = 'configured', prefix = excluded.prefix`,
            [newId('tok_', now), hash, tokenPrefix(t.token), t.accountId, now],
          );
        }
        // The configured tokens are exactly the set given: one taken out stops working, also the last.
        await q(`DELETE FROM api_tokens WHERE origin = 'configured' AND NOT (token_hash = ANY($1::text[]))`, [keep]);
        const [{ n }] = (await q<{ n: number }>('SELECT count(*)::bigint AS n FROM api_tokens')) as [{ n: number }];
        if (configured.length > 0 || n > 0) return null;
        return (await insertToken(q, DEFAULT_ACCOUNT, 'first-start', now)).token;
      }),

    async accountFor(token) {
      if (!plausibleToken(token)) return null;
      const [row] = await db.query<TokenRow>('SELECT * FROM api_tokens WHERE token_hash = $1', [hashToken(token)]);
      if (!row) return null;
      const now = Date.now();
      if (touchDue(row, touched, now)) {
        // Informational: never fails or delays the request.
        db.query('UPDATE api_tokens SET last_used_ms = $1 WHERE id = $2', [now, row.id]).catch(() => {});
      }
      return row.account_id;
    },

    async list() {
      return (await db.query<TokenRow>('SELECT * FROM api_tokens ORDER BY create_time_ms, id')).map(toTokenInfo);
    },

    create: (accountId) =>
      db.write(null, async (q) => {
        await lock(q);
        return insertToken(q, accountId, 'created', Date.now());
      }),

    revoke: (ref) =>
      db.write(null, async (q) => {
        await lock(q);
        const rows = await q<TokenRow>('SELECT * FROM api_tokens ORDER BY create_time_ms, id');
        const row = tokenByRef(rows, ref);
        await q('DELETE FROM api_tokens WHERE id = $1', [row.id]);
        touched.delete(row.id);
        return toTokenInfo(row);
      }),
  };
}
