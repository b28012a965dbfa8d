/** Network policies in sqlite; one in use by a running devbox or an active build is not deleted. */
import { type NetworkPolicy, DEFAULT_EGRESS, completeEgress } from '../../policy/model.js';
import type { PolicyRepository } from '../backend.js';
import { newId } from '../ids.js';
import { type PolicyRow, toPolicy } from '../rows.js';
import { type Page, type PolicyInput, type PolicyPatch, type PolicyQuery, StoreError, duplicateName } from '../types.js';
import type { SqliteChecks } from './checks.js';
import { type SqliteContext, type Sync, accountFilter, isUniqueViolation } from './context.js';
import { checkPolicyFits } from '../entry-limit.js';

/** The policy as stored, refused (rolled back) when it would not fit one fleet entry. */
function fitting(p: NetworkPolicy): NetworkPolicy {
  checkPolicyFits(p);
  return p;
}

export class SqlitePolicies implements Sync<PolicyRepository> {
  private readonly q;

  constructor(
    private readonly ctx: SqliteContext,
    private readonly checks: SqliteChecks,
  ) {
    const p = (sql: string) => ctx.db.prepare(sql);
    this.q = {
      byId: p('SELECT * FROM network_policies WHERE id = ?'),
      byName: p('SELECT * FROM network_policies WHERE account_id = ? AND name = ?'),
      insert: p(`INSERT INTO network_policies (id, account_id, name, description, egress, enforcement, version, create_time_ms, update_time_ms)
                 VALUES (@id, @account_id, @name, @description, @egress, @enforcement, 1, @create_time_ms, @update_time_ms)`),
      update: p(`UPDATE network_policies SET name = @name, description = @description, egress = @egress, enforcement = @enforcement,
                 version = version + 1, update_time_ms = @update_time_ms WHERE id = @id`),
      delete: p('DELETE FROM network_policies WHERE id = ?'),
      runningUsers: p(`SELECT id FROM devboxes WHERE status = 'running' AND network_policy_id = ? ORDER BY id`).pluck(),
      activeBuildUsers: p(`SELECT id FROM blueprints WHERE status IN ('queued', 'provisioning', 'building') AND network_policy_id = ? ORDER BY id`).pluck(),
    };
  }

  /** Any account's policy (the data plane's read). */
  byId(id: string): NetworkPolicy | undefined {
    const r = this.q.byId.get(id) as PolicyRow | undefined;
    return r && toPolicy(r);
  }

  get(accountId: string, id: string): NetworkPolicy | undefined {
    const p = this.byId(id);
    return p && p.account_id === accountId ? p : undefined;
  }

  getByName(accountId: string, name: string): NetworkPolicy | undefined {
    const r = this.q.byName.get(accountId, name) as PolicyRow | undefined;
    return r && toPolicy(r);
  }

  create(accountId: string, input: PolicyInput): NetworkPolicy {
    return this.ctx.write((changes) => {
      if (this.q.byName.get(accountId, input.name)) throw duplicateName(input.name);
      const now = Date.now();
      const id = newId('npol_', now);
      const egress = completeEgress(DEFAULT_EGRESS, input.egress);
      this.checks.policyQuotas(accountId, null, egress);
      try {
        this.q.insert.run({
          id,
          account_id: accountId,
          name: input.name,
          description: input.description ?? null,
          egress: JSON.stringify(egress),
          enforcement: input.enforcement ?? 'enforce',
          create_time_ms: now,
          update_time_ms: now,
        });
      } catch (e) {
        if (isUniqueViolation(e)) throw duplicateName(input.name);
        throw e;
      }
      changes.push({ kind: 'policy', id, accountId });
      return fitting(this.byId(id)!);
    });
  }

  update(accountId: string, id: string, patch: PolicyPatch): NetworkPolicy {
    return this.ctx.write((changes) => {
      const cur = this.get(accountId, id);
      if (!cur) throw new StoreError('not_found', `network policy ${id} not found`);
      const name = patch.name ?? cur.name;
      if (name !== cur.name && this.q.byName.get(accountId, name)) throw duplicateName(name);
      const egress = completeEgress(cur.egress, patch.egress);
      this.checks.policyQuotas(accountId, id, egress);
      try {
        this.q.update.run({
          id,
          name,
          description: patch.description === undefined ? cur.description : patch.description,
          egress: JSON.stringify(egress),
          enforcement: patch.enforcement ?? cur.enforcement,
          update_time_ms: Math.max(Date.now(), cur.update_time_ms),
        });
      } catch (e) {
        if (isUniqueViolation(e)) throw duplicateName(name);
        throw e;
      }
      changes.push({ kind: 'policy', id, accountId });
      return fitting(this.byId(id)!);
    });
  }

  delete(accountId: string, id: string): NetworkPolicy {
    return this.ctx.write((changes) => {
      const cur = this.get(accountId, id);
      if (!cur) throw new StoreError('not_found', `network policy ${id} not found`);
      const ids = [...(this.q.runningUsers.all(id) as string[]), ...(this.q.activeBuildUsers.all(id) as string[])];
      if (ids.length > 0) {
        throw new StoreError('policy_in_use', `network policy ${id} is in use by running devboxes or active blueprint builds: ${ids.join(', ')}; shut them down or move them to another policy first`, { devbox_ids: ids });
      }
      this.q.delete.run(id);
      changes.push({ kind: 'policy', id, accountId });
      return cur;
    });
  }

  list(accountId: string, query: PolicyQuery): Page<NetworkPolicy> {
    const { where, params } = accountFilter(accountId, query.name);
    if (query.id) {
      where.push('id = @id');
      params.id = query.id;
    }
    return this.ctx.page<PolicyRow, NetworkPolicy>('network_policies', where, params, query, toPolicy);
  }
}
