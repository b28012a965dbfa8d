/** Secrets in PostgreSQL: one row per (account, name), the value sealed (SecretBox); never read back by the API. */
import { AGENT_LIMITS, type SecretInfo, type SecretRepository, type SecretRow, agentQuotaExceeded, duplicateSecret, secretInUse, secretNotFound, toSecretInfo } from '../agents.js';
import { newId } from '../ids.js';
import type { SecretBox } from '../secret-box.js';
import { StoreError } from '../types.js';
import { type PgDb, type Query, uniqueViolation } from './db.js';
import { Where, pageOf } from './page.js';

/** The account's secret by `sec_` id or by name. */
export async function resolveSecret(q: Query, accountId: string, ref: string): Promise<SecretRow | undefined> {
  if (ref.startsWith('sec_')) {
    const [r] = await q<SecretRow>('SELECT * FROM secrets WHERE id = $1 AND account_id = $2', [ref, accountId]);
    if (r) return r;
  }
  const [r] = await q<SecretRow>('SELECT * FROM secrets WHERE account_id = $1 AND name = $2', [accountId, ref]);
  return r;
}

async function byName(q: Query, accountId: string, name: string, lock = false): Promise<SecretRow | undefined> {
  const [r] = await q<SecretRow>(`SELECT * FROM secrets WHERE account_id = $1 AND name = $2${lock ? ' FOR UPDATE' : ''}`, [accountId, name]);
  return r;
}

export function pgSecrets(db: PgDb, box: SecretBox | null): SecretRepository {
  const q: Query = (sql, params) => db.query(sql, params);
  const sealer = (): SecretBox => {
    if (!box) throw new StoreError('secrets_unavailable', 'this process has no secrets key (--secrets-key-file)');
    return box;
  };
  return {
    async get(accountId, name) {
      const r = await byName(q, accountId, name);
      return r && toSecretInfo(r);
    },

    create(accountId, name, value) {
      const b = sealer();
      return db.write(accountId, async (tq, changes) => {
        if (await byName(tq, accountId, name)) throw duplicateSecret(name);
        const [{ n }] = (await tq<{ n: number }>('SELECT count(*)::bigint AS n FROM secrets WHERE account_id = $1', [accountId])) as [{ n: number }];
        if (n >= AGENT_LIMITS.secretsPerAccount) throw agentQuotaExceeded('secrets_per_account', AGENT_LIMITS.secretsPerAccount);
        const now = Date.now();
        const id = newId('sec_', now);
        const row: SecretRow = { id, account_id: accountId, name, ciphertext: b.seal(accountId, id, value), create_time_ms: now, update_time_ms: now };
        try {
          await tq('INSERT INTO secrets (id, account_id, name, ciphertext, create_time_ms, update_time_ms) VALUES ($1, $2, $3, $4, $5, $6)', [row.id, row.account_id, row.name, row.ciphertext, now, now]);
        } catch (e) {
          if (uniqueViolation(e) !== null) throw duplicateSecret(name);
          throw e;
        }
        changes.push({ kind: 'secret', id, accountId, value: row });
        return toSecretInfo(row);
      });
    },

    update(accountId, name, value) {
      const b = sealer();
      return db.write(accountId, async (tq, changes) => {
        const cur = await byName(tq, accountId, name, true);
        if (!cur) throw secretNotFound(name);
        const row: SecretRow = { ...cur, ciphertext: b.seal(accountId, cur.id, value), update_time_ms: Math.max(Date.now(), cur.update_time_ms) };
        await tq('UPDATE secrets SET ciphertext = $2, update_time_ms = $3 WHERE id = $1', [cur.id, row.ciphertext, row.update_time_ms]);
        changes.push({ kind: 'secret', id: cur.id, accountId, value: row });
        return toSecretInfo(row);
      });
    },

    delete(accountId, name) {
      return db.write(accountId, async (tq, changes) => {
        const cur = await byName(tq, accountId, name, true);
        if (!cur) throw secretNotFound(name);
        const users = (await tq<{ id: string; custom_headers: string }>('SELECT id, custom_headers FROM agent_configs WHERE account_id = $1 AND strpos(custom_headers, $2) > 0 ORDER BY id', [accountId, cur.id])).filter((c) =>
          (JSON.parse(c.custom_headers) as { secret_id?: string }[]).some((h) => h.secret_id === cur.id),
        );
        if (users.length > 0)
          throw secretInUse(
            cur.name,
            users.map((c) => c.id),
          );
        await tq('DELETE FROM agent_tokens WHERE secret_id = $1', [cur.id]);
        await tq('DELETE FROM secrets WHERE id = $1', [cur.id]);
        changes.push({ kind: 'secret', id: cur.id, accountId, value: null });
        return toSecretInfo(cur);
      });
    },

    list: (accountId, query) => pageOf<SecretRow, SecretInfo>(db, 'secrets', Where.account(accountId), query, toSecretInfo),
  };
}
