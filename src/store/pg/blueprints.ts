/** Blueprints in PostgreSQL; an active build's addresses are rows of held_addresses. */
import type { BlueprintRepository } from '../backend.js';
import { type Blueprint, type BlueprintRow, ACTIVE_BUILD, buildRuntime, canMove, toBlueprint } from '../blueprints.js';
import { hashPassword } from '../../policy/password.js';
import { newId, randomSecret } from '../ids.js';
import { type Quotas, StoreError } from '../types.js';
import type { PendingChange, PgDb, Query } from './db.js';
import { checkBlueprintQuotas, freeAddresses, holdAddresses, requirePolicy } from './checks.js';
import { Where, pageOf } from './page.js';

async function blueprintFor(q: Query, accountId: string, id: string, lock = false): Promise<Blueprint | undefined> {
  const [r] = await q<BlueprintRow>(`SELECT * FROM blueprints WHERE id = $1 AND account_id = $2${lock ? ' FOR UPDATE' : ''}`, [id, accountId]);
  return r && toBlueprint(r);
}

/** A build's change record: the client the engine sees (null: deleted). */
function buildChange(accountId: string, id: string, b: Blueprint | null): PendingChange {
  return { kind: 'devbox', id, accountId, hostId: null, value: b === null ? null : buildRuntime(b) };
}

export function pgBlueprints(db: PgDb, quotas: () => Quotas | null): BlueprintRepository {
  const q: Query = (sql, params) => db.query(sql, params);
  return {
    get: (accountId, id) => blueprintFor(q, accountId, id),

    create: (accountId, input) =>
      db.write(accountId, async (tq, changes) => {
        for (const [field, pid] of [
          ['network_policy_id', input.networkPolicyId],
          ['launch_parameters.network_policy_id', input.launchNetworkPolicyId],
        ] as const) {
          if (pid) await requirePolicy(tq, accountId, pid, field);
        }
        const addresses = await freeAddresses(tq, accountId, input.addresses ?? []);
        await checkBlueprintQuotas(tq, quotas(), accountId, addresses.length);
        const now = Date.now();
        const id = newId('bpt_', now);
        const [r] = await tq<BlueprintRow>(
          `INSERT INTO blueprints (id, account_id, name, status, failure_reason, network_policy_id, launch_network_policy_id, addresses, metadata, parameters, password_hash, create_time_ms, build_finish_time_ms)
        VALUES ($1, $2, $3, 'queued', NULL, $4, $5, $6, $7, $8, $9, $10, NULL) RETURNING *`,
          [id, accountId, input.name, input.networkPolicyId ?? null, input.launchNetworkPolicyId ?? null, JSON.stringify(addresses), JSON.stringify(input.metadata ?? {}), JSON.stringify(input.parameters), hashPassword(randomSecret(24)), now],
        );
        await holdAddresses(tq, accountId, id, addresses);
        const b = toBlueprint(r!);
        changes.push(buildChange(accountId, id, b));
        return b;
      }),

    setStatus: (accountId, id, status, failureReason = null) =>
      db.write(accountId, async (tq, changes) => {
        const cur = await blueprintFor(tq, accountId, id, true);
        if (!cur) throw new StoreError('not_found', `blueprint ${id} not found`);
        if (cur.status === status) return cur;
        if (!canMove(cur.status, status)) throw new StoreError('invalid_transition', `status: a build cannot go from ${cur.status} to ${status}`);
        const done = !ACTIVE_BUILD.has(status);
        const [r] = await tq<BlueprintRow>('UPDATE blueprints SET status = $2, failure_reason = $3, build_finish_time_ms = $4 WHERE id = $1 RETURNING *', [id, status, status === 'failed' ? (failureReason ?? 'build_failed') : null, done ? Date.now() : null]);
        if (done) await tq('DELETE FROM held_addresses WHERE owner_id = $1', [id]);
        const b = toBlueprint(r!);
        changes.push(buildChange(accountId, id, b));
        return b;
      }),

    delete: (accountId, id) =>
      db.write(accountId, async (tq, changes) => {
        const cur = await blueprintFor(tq, accountId, id, true);
        if (!cur) throw new StoreError('not_found', `blueprint ${id} not found`);
        await tq('DELETE FROM held_addresses WHERE owner_id = $1', [id]);
        await tq('DELETE FROM blueprints WHERE id = $1', [id]);
        changes.push(buildChange(accountId, id, null));
        return cur;
      }),

    list(accountId, query) {
      const w = Where.account(accountId, query.name);
      if (query.status) w.add((p) => `status = ${p}`, query.status);
      return pageOf<BlueprintRow, Blueprint>(db, 'blueprints', w, query, toBlueprint);
    },
  };
}
