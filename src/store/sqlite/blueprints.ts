/** Blueprints in sqlite: an active build holds its addresses (build_addresses) until it leaves the active steps. */
import type { Devbox } from '../../policy/model.js';
import { hashPassword } from '../../policy/password.js';
import type { BlueprintRepository } from '../backend.js';
import { type Blueprint, type BlueprintRow, type BlueprintStatus, type FailureReason, ACTIVE_BUILD, buildRuntime, canMove, toBlueprint } from '../blueprints.js';
import { newId, randomSecret } from '../ids.js';
import { type BlueprintInput, type BlueprintQuery, type Page, StoreError } from '../types.js';
import type { SqliteChecks } from './checks.js';
import { type SqliteContext, type Sync, accountFilter } from './context.js';

export class SqliteBlueprints implements Sync<BlueprintRepository> {
  private readonly q;

  constructor(
    private readonly ctx: SqliteContext,
    private readonly checks: SqliteChecks,
  ) {
    const p = (sql: string) => ctx.db.prepare(sql);
    this.q = {
      byId: p('SELECT * FROM blueprints WHERE id = ?'),
      active: p(`SELECT * FROM blueprints WHERE status IN ('queued', 'provisioning', 'building') ORDER BY id`),
      insert: p(`INSERT INTO blueprints (id, account_id, name, status, failure_reason, network_policy_id, launch_network_policy_id, addresses, metadata, parameters, password_hash, create_time_ms, build_finish_time_ms)
                 VALUES (@id, @account_id, @name, 'queued', NULL, @network_policy_id, @launch_network_policy_id, @addresses, @metadata, @parameters, @password_hash, @create_time_ms, NULL)`),
      setStatus: p('UPDATE blueprints SET status = @status, failure_reason = @failure_reason, build_finish_time_ms = @finish WHERE id = @id'),
      delete: p('DELETE FROM blueprints WHERE id = ?'),
      insertAddress: p('INSERT INTO build_addresses (address, blueprint_id) VALUES (?, ?)'),
      deleteAddresses: p('DELETE FROM build_addresses WHERE blueprint_id = ?'),
    };
  }

  /** A build as the engine sees it (running while the build is active), any account's. */
  runtime(id: string): Devbox | undefined {
    const b = this.q.byId.get(id) as BlueprintRow | undefined;
    return b && buildRuntime(toBlueprint(b));
  }

  /** Every active build as the engine sees it, by id. */
  activeRuntimes(): Devbox[] {
    return (this.q.active.all() as BlueprintRow[]).map((b) => buildRuntime(toBlueprint(b)));
  }

  get(accountId: string, id: string): Blueprint | undefined {
    const r = this.q.byId.get(id) as BlueprintRow | undefined;
    return r && r.account_id === accountId ? toBlueprint(r) : undefined;
  }

  create(accountId: string, input: BlueprintInput): Blueprint {
    return this.ctx.write((changes) => {
      for (const [field, pid] of [
        ['network_policy_id', input.networkPolicyId],
        ['launch_parameters.network_policy_id', input.launchNetworkPolicyId],
      ] as const) {
        if (pid) this.checks.requirePolicy(accountId, pid, field);
      }
      const addresses = this.checks.freeAddresses(accountId, input.addresses ?? []);
      this.checks.blueprintQuotas(accountId, addresses.length);
      const now = Date.now();
      const id = newId('bpt_', now);
      this.q.insert.run({
        id,
        account_id: accountId,
        name: input.name,
        network_policy_id: input.networkPolicyId ?? null,
        launch_network_policy_id: input.launchNetworkPolicyId ?? null,
        addresses: JSON.stringify(addresses),
        metadata: JSON.stringify(input.metadata ?? {}),
        parameters: JSON.stringify(input.parameters),
        password_hash: hashPassword(randomSecret(24)),
        create_time_ms: now,
      });
      for (const a of addresses) this.q.insertAddress.run(a, id);
      changes.push({ kind: 'devbox', id, accountId });
      return this.get(accountId, id)!;
    });
  }

  setStatus(accountId: string, id: string, status: BlueprintStatus, failureReason: FailureReason | null = null): Blueprint {
    return this.ctx.write((changes) => {
      const cur = this.get(accountId, id);
      if (!cur) throw new StoreError('not_found', `blueprint ${id} not found`);
      if (cur.status === status) return cur;
      if (!canMove(cur.status, status)) throw new StoreError('invalid_transition', `status: a build cannot go from ${cur.status} to ${status}`);
      const done = !ACTIVE_BUILD.has(status);
      this.q.setStatus.run({ id, status, failure_reason: status === 'failed' ? (failureReason ?? 'build_failed') : null, finish: done ? Date.now() : null });
      if (done) this.q.deleteAddresses.run(id);
      changes.push({ kind: 'devbox', id, accountId });
      return this.get(accountId, id)!;
    });
  }

  delete(accountId: string, id: string): Blueprint {
    return this.ctx.write((changes) => {
      const cur = this.get(accountId, id);
      if (!cur) throw new StoreError('not_found', `blueprint ${id} not found`);
      this.q.delete.run(id); // its build addresses go with it (ON DELETE CASCADE)
      changes.push({ kind: 'devbox', id, accountId });
      return cur;
    });
  }

  list(accountId: string, query: BlueprintQuery): Page<Blueprint> {
    const { where, params } = accountFilter(accountId, query.name);
    if (query.status) {
      where.push('status = @status');
      params.status = query.status;
    }
    return this.ctx.page<BlueprintRow, Blueprint>('blueprints', where, params, query, toBlueprint);
  }
}
