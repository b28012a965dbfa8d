/** Network policies in PostgreSQL. Unique names per account: the UNIQUE constraint, under the account lock. */
import { DEFAULT_EGRESS, type NetworkPolicy, completeEgress } from '../../policy/model.js';
import type { PolicyRepository } from '../backend.js';
import { newId } from '../ids.js';
import { type PolicyRow, toPolicy } from '../rows.js';
import { type Quotas, StoreError } from '../types.js';
import { type PgDb, type Query, uniqueViolation } from './db.js';
import { checkPolicyQuotas, duplicateName } from './checks.js';
import { checkPolicyFits } from '../entry-limit.js';
import { Where, pageOf } from './page.js';

async function policyFor(q: Query, accountId: string, id: string, lock = false): Promise<NetworkPolicy | undefined> {
  const [r] = await q<PolicyRow>(`SELECT * FROM network_policies WHERE id = $1 AND account_id = $2${lock ? ' FOR UPDATE' : ''}`, [id, accountId]);
  return r && toPolicy(r);
}

export function pgPolicies(db: PgDb, quotas: () => Quotas | null): PolicyRepository {
  const q: Query = (sql, params) => db.query(sql, params);
  const rethrowDuplicate = (name: string) => (e: unknown) => {
    if (uniqueViolation(e) !== null) throw duplicateName(name);
    throw e;
  };
  return {
    get: (accountId, id) => policyFor(q, accountId, id),

    async getByName(accountId, name) {
      const [r] = await db.query<PolicyRow>('SELECT * FROM network_policies WHERE account_id = $1 AND name = $2', [accountId, name]);
      return r && toPolicy(r);
    },

    create: (accountId, input) =>
      db.write(accountId, async (tq, changes) => {
        if ((await tq('SELECT 1 FROM network_policies WHERE account_id = $1 AND name = $2', [accountId, input.name])).length > 0) throw duplicateName(input.name);
        const now = Date.now();
        const id = newId('npol_', now);
        const egress = completeEgress(DEFAULT_EGRESS, input.egress);
        await checkPolicyQuotas(tq, quotas(), accountId, null, egress);
        const [r] = await tq<PolicyRow>(
          `INSERT INTO network_policies (id, account_id, name, description, egress, enforcement, version, create_time_ms, update_time_ms)
        VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $7) RETURNING *`,
          [id, accountId, input.name, input.description ?? null, JSON.stringify(egress), input.enforcement ?? 'enforce', now],
        ).catch(rethrowDuplicate(input.name));
        const p = toPolicy(r!);
        checkPolicyFits(p);
        changes.push({ kind: 'policy', id, accountId, value: p });
        return p;
      }),

    update: (accountId, id, patch) =>
      db.write(accountId, async (tq, changes) => {
        const cur = await policyFor(tq, accountId, id, true);
        if (!cur) throw new StoreError('not_found', `network policy ${id} not found`);
        const name = patch.name ?? cur.name;
        if (name !== cur.name && (await tq('SELECT 1 FROM network_policies WHERE account_id = $1 AND name = $2', [accountId, name])).length > 0) throw duplicateName(name);
        const egress = completeEgress(cur.egress, patch.egress);
        await checkPolicyQuotas(tq, quotas(), accountId, id, egress);
        const [r] = await tq<PolicyRow>(
          `UPDATE network_policies SET name = $2, description = $3, egress = $4, enforcement = $5,
          version = version + 1, update_time_ms = $6 WHERE id = $1 RETURNING *`,
          [id, name, patch.description === undefined ? cur.description : patch.description, JSON.stringify(egress), patch.enforcement ?? cur.enforcement, Math.max(Date.now(), cur.update_time_ms)],
        ).catch(rethrowDuplicate(name));
        const p = toPolicy(r!);
        checkPolicyFits(p);
        changes.push({ kind: 'policy', id, accountId, value: p });
        return p;
      }),

    delete: (accountId, id) =>
      db.write(accountId, async (tq, changes) => {
        const cur = await policyFor(tq, accountId, id, true);
        if (!cur) throw new StoreError('not_found', `network policy ${id} not found`);
        const users = await tq<{ id: string }>(`SELECT id FROM devboxes WHERE status = 'running' AND network_policy_id = $1 ORDER BY id`, [id]);
        const builds = await tq<{ id: string }>(`SELECT id FROM blueprints WHERE status IN ('queued', 'provisioning', 'building') AND network_policy_id = $1 ORDER BY id`, [id]);
        if (users.length > 0 || builds.length > 0) {
          const ids = [...users, ...builds].map((r) => r.id);
          throw new StoreError('policy_in_use', `network policy ${id} is in use by running devboxes or active blueprint builds: ${ids.join(', ')}; shut them down or move them to another policy first`, { devbox_ids: ids });
        }
        await tq('DELETE FROM network_policies WHERE id = $1', [id]);
        changes.push({ kind: 'policy', id, accountId, value: null });
        return cur;
      }),

    list(accountId, query) {
      const w = Where.account(accountId, query.name);
      if (query.id) w.add((p) => `id = ${p}`, query.id);
      return pageOf<PolicyRow, NetworkPolicy>(db, 'network_policies', w, query, toPolicy);
    },
  };
}
