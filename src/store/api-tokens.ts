/**
 * API tokens: the rules both backends apply. A token's text is shown once and stored only as
 * its hash; a use is recorded at most once a minute; `tokens revoke REF` names one token by
 * its id, an id prefix, its display prefix or its full text.
 */
import { randomSecret } from './ids.js';
import type { TokenRow } from './rows.js';
import { StoreError, hashToken } from './types.js';

/** The text of a new token (`egw_` and 32 random characters). */
export function newApiToken(): string {
  return `egw_${randomSecret(32)}`;
}

/** A bearer text worth looking up (empty and oversized ones are not tokens). */
export function plausibleToken(token: string): boolean {
  return token.length > 0 && token.length <= 4096;
}

const TOUCH_EVERY_MS = 60_000;

/**
 * Whether to record this use of the token now: its stored last use and this process's last
 * attempt (`touched`, token id → time, updated here) are both a minute old or more.
 */
export function touchDue(row: TokenRow, touched: Map<string, number>, now: number): boolean {
  if (row.last_used_ms !== null && now - row.last_used_ms < TOUCH_EVERY_MS) return false;
  if (now - (touched.get(row.id) ?? 0) < TOUCH_EVERY_MS) return false;
  touched.set(row.id, now);
  return true;
}

/**
 * The one token `ref` names: an exact id or full text first; else (4 characters or more) the
 * tokens whose id or display prefix starts with it. None or several is a StoreError.
 */
export function tokenByRef(rows: readonly TokenRow[], ref: string): TokenRow {
  const hash = hashToken(ref);
  const exact = rows.filter((r) => r.id === ref || r.token_hash === hash);
  const matches = exact.length > 0 ? exact : ref.length < 4 ? [] : rows.filter((r) => r.id.startsWith(ref) || (r.prefix !== null && r.prefix.length >= 4 && r.prefix.startsWith(ref)));
  if (matches.length === 0) throw new StoreError('not_found', `no token with id or prefix ${JSON.stringify(ref)}`);
  if (matches.length > 1) {
    throw new StoreError('ambiguous', `${JSON.stringify(ref)} matches ${matches.length} tokens (${matches.map((r) => r.id).join(', ')}); give the id`);
  }
  return matches[0]!;
}
