/** Secrets in sqlite: one row per (account, name), the value sealed (SecretBox); never read back by the API. */
import { newId } from '../ids.js';
import { AGENT_LIMITS, type SecretInfo, type SecretRow, agentQuotaExceeded, duplicateSecret, secretInUse, secretNotFound, toSecretInfo } from '../agents.js';
import { type Page, type PageQuery, StoreError } from '../types.js';
import type { SecretBox } from '../secret-box.js';
import type { SqliteContext, StoreChange } from './context.js';

function isUniqueViolation(e: unknown): boolean {
  return (e as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE';
}

export class SqliteSecrets {
  private readonly q;

  constructor(private readonly ctx: SqliteContext) {
    const p = (sql: string) => ctx.db.prepare(sql);
    this.q = {
      byName: p('SELECT * FROM secrets WHERE account_id = ? AND name = ?'),
      byId: p('SELECT * FROM secrets WHERE id = ? AND account_id = ?'),
      count: p('SELECT count(*) FROM secrets WHERE account_id = ?').pluck(),
      insert: p('INSERT INTO secrets (id, account_id, name, ciphertext, create_time_ms, update_time_ms) VALUES (@id, @account_id, @name, @ciphertext, @create_time_ms, @update_time_ms)'),
      update: p('UPDATE secrets SET ciphertext = ?, update_time_ms = ? WHERE id = ?'),
      delete: p('DELETE FROM secrets WHERE id = ?'),
      deleteTokens: p('DELETE FROM agent_tokens WHERE secret_id = ?'),
      headerUsers: p(`SELECT id, custom_headers FROM agent_configs WHERE account_id = ? AND instr(custom_headers, ?) > 0 ORDER BY id`),
    };
  }

  private box(): SecretBox {
    if (!this.ctx.box) throw new StoreError('secrets_unavailable', 'this process has no secrets key (--secrets-key-file)');
    return this.ctx.box;
  }

  /** The account's secret by `sec_` id or by name. */
  resolve(accountId: string, ref: string): SecretRow | undefined {
    const byId = ref.startsWith('sec_') ? (this.q.byId.get(ref, accountId) as SecretRow | undefined) : undefined;
    return byId ?? (this.q.byName.get(accountId, ref) as SecretRow | undefined);
  }

  get(accountId: string, name: string): SecretInfo | undefined {
    const r = this.q.byName.get(accountId, name) as SecretRow | undefined;
    return r && toSecretInfo(r);
  }

  create(accountId: string, name: string, value: string): SecretInfo {
    const box = this.box();
    return this.ctx.write((changes) => {
      if (this.q.byName.get(accountId, name)) throw duplicateSecret(name);
      if ((this.q.count.get(accountId) as number) >= AGENT_LIMITS.secretsPerAccount) throw agentQuotaExceeded('secrets_per_account', AGENT_LIMITS.secretsPerAccount);
      const now = Date.now();
      const id = newId('sec_', now);
      const row: SecretRow = { id, account_id: accountId, name, ciphertext: box.seal(accountId, id, value), create_time_ms: now, update_time_ms: now };
      try {
        this.q.insert.run(row);
      } catch (e) {
        if (isUniqueViolation(e)) throw duplicateSecret(name);
        throw e;
      }
      changes.push({ kind: 'secret', id, accountId, value: row });
      return toSecretInfo(row);
    });
  }

  update(accountId: string, name: string, value: string): SecretInfo {
    const box = this.box();
    return this.ctx.write((changes) => {
      const cur = this.q.byName.get(accountId, name) as SecretRow | undefined;
      if (!cur) throw secretNotFound(name);
      const row: SecretRow = { ...cur, ciphertext: box.seal(accountId, cur.id, value), update_time_ms: Math.max(Date.now(), cur.update_time_ms) };
      this.q.update.run(row.ciphertext, row.update_time_ms, cur.id);
      changes.push({ kind: 'secret', id: cur.id, accountId, value: row });
      return toSecretInfo(row);
    });
  }

  delete(accountId: string, name: string): SecretInfo {
    return this.ctx.write((changes) => {
      const cur = this.q.byName.get(accountId, name) as SecretRow | undefined;
      if (!cur) throw secretNotFound(name);
      this.refuseInUse(accountId, cur);
      this.q.deleteTokens.run(cur.id);
      this.q.delete.run(cur.id);
      changes.push({ kind: 'secret', id: cur.id, accountId, value: null } satisfies StoreChange);
      return toSecretInfo(cur);
    });
  }

  private refuseInUse(accountId: string, s: SecretRow): void {
    const users = (this.q.headerUsers.all(accountId, s.id) as { id: string; custom_headers: string }[]).filter((c) => (JSON.parse(c.custom_headers) as { secret_id?: string }[]).some((h) => h.secret_id === s.id));
    if (users.length > 0)
      throw secretInUse(
        s.name,
        users.map((c) => c.id),
      );
  }

  list(accountId: string, query: PageQuery): Page<SecretInfo> {
    return this.ctx.page<SecretRow, SecretInfo>('secrets', ['account_id = @account'], { account: accountId }, query, toSecretInfo);
  }
}
