/** Devboxes in PostgreSQL; their addresses are rows of held_addresses while they run. */
import type { Devbox } from '../../policy/model.js';
import { hashPassword } from '../../policy/password.js';
import type { DevboxRepository } from '../backend.js';
import { type BlueprintRow, toBlueprint } from '../blueprints.js';
import { newId, randomAlnum, randomSecret } from '../ids.js';
import { type DevboxRow, toDevbox } from '../rows.js';
import { type DevboxInput, type Quotas, StoreError } from '../types.js';
import type { PendingChange, PgDb, Query } from './db.js';
import { checkDevboxQuotas, freeAddresses, holdAddresses, requirePolicy } from './checks.js';
import { Where, pageOf } from './page.js';
import type { MintedToken } from '../agents.js';
import { mintAtCreate } from './agent-tokens.js';

async function devboxFor(q: Query, accountId: string, id: string, lock = false): Promise<Devbox | undefined> {
  const [r] = await q<DevboxRow>(`SELECT * FROM devboxes WHERE id = $1 AND account_id = $2${lock ? ' FOR UPDATE' : ''}`, [id, accountId]);
  return r && toDevbox(r);
}

/** The policy a devbox created from a blueprint gets: its own if named, else the blueprint's launch policy. */
async function launchPolicy(q: Query, accountId: string, input: DevboxInput): Promise<string | null> {
  if (input.networkPolicyId) return input.networkPolicyId;
  if (!input.blueprintId) return null;
  const [r] = await q<BlueprintRow>('SELECT * FROM blueprints WHERE id = $1 AND account_id = $2', [input.blueprintId, accountId]);
  if (!r) throw new StoreError('blueprint_not_found', `blueprint_id: blueprint ${input.blueprintId} does not exist in this account`);
  const b = toBlueprint(r);
  if (b.status !== 'build_complete') throw new StoreError('blueprint_not_ready', `blueprint_id: blueprint ${b.id} is not built (status ${b.status})`);
  return b.launch_network_policy_id;
}

export function pgDevboxes(db: PgDb, quotas: () => Quotas | null): DevboxRepository {
  const q: Query = (sql, params) => db.query(sql, params);
  return {
    get: (accountId, id) => devboxFor(q, accountId, id),

    async create(accountId, input) {
      const password = randomSecret(24);
      let agentTokens: MintedToken[] = [];
      const devbox = await db.write(accountId, async (tq, changes) => {
        const policyId = await launchPolicy(tq, accountId, input);
        if (policyId) await requirePolicy(tq, accountId, policyId);
        const addresses = await freeAddresses(tq, accountId, input.addresses ?? []);
        await checkDevboxQuotas(tq, quotas(), accountId, addresses.length);
        const now = Date.now();
        const id = newId('dbx_', now);
        const [r] = await tq<DevboxRow>(
          `INSERT INTO devboxes (id, account_id, name, status, network_policy_id, addresses, metadata, tunnel_key, password_hash, create_time_ms, end_time_ms, blueprint_id, host_id)
          VALUES ($1, $2, $3, 'running', $4, $5, $6, $7, $8, $9, NULL, $10, $11) RETURNING *`,
          [id, accountId, input.name ?? null, policyId, JSON.stringify(addresses), JSON.stringify(input.metadata ?? {}), randomAlnum(20), hashPassword(password), now, input.blueprintId ?? null, input.hostId ?? null],
        );
        await holdAddresses(tq, accountId, id, addresses);
        let row = r!;
        const minted: PendingChange[] = [];
        if (input.agents) {
          agentTokens = await mintAtCreate(tq, accountId, id, input.agents, minted);
          if (agentTokens.length > 0) row = (await tq<DevboxRow>('SELECT * FROM devboxes WHERE id = $1', [id]))[0]!;
        }
        const d = toDevbox(row);
        changes.push({ kind: 'devbox', id, accountId, hostId: d.host_id ?? null, value: d }, ...minted);
        return d;
      });
      return { devbox, password, agentTokens };
    },

    update: (accountId, id, patch) =>
      db.write(accountId, async (tq, changes) => {
        const cur = await devboxFor(tq, accountId, id, true);
        if (!cur) throw new StoreError('not_found', `devbox ${id} not found`);
        if (patch.networkPolicyId) await requirePolicy(tq, accountId, patch.networkPolicyId);
        const [r] = await tq<DevboxRow>('UPDATE devboxes SET name = $2, metadata = $3, network_policy_id = $4 WHERE id = $1 RETURNING *', [
          id,
          patch.name === undefined ? cur.name : patch.name,
          JSON.stringify(patch.metadata ?? cur.metadata),
          patch.networkPolicyId === undefined ? cur.network_policy_id : patch.networkPolicyId,
        ]);
        const d = toDevbox(r!);
        changes.push({ kind: 'devbox', id, accountId, hostId: d.host_id ?? null, value: d });
        return d;
      }),

    shutdown: (accountId, id) =>
      db.write(accountId, async (tq, changes) => {
        const cur = await devboxFor(tq, accountId, id, true);
        if (!cur) throw new StoreError('not_found', `devbox ${id} not found`);
        if (cur.status === 'shutdown') return cur;
        const [r] = await tq<DevboxRow>(`UPDATE devboxes SET status = 'shutdown', end_time_ms = $2 WHERE id = $1 RETURNING *`, [id, Date.now()]);
        await tq('DELETE FROM held_addresses WHERE owner_id = $1', [id]);
        await tq('DELETE FROM agent_tokens WHERE devbox_id = $1', [id]);
        const d = toDevbox(r!);
        changes.push({ kind: 'devbox', id, accountId, hostId: d.host_id ?? null, value: d });
        return d;
      }),

    list(accountId, query) {
      const w = Where.account(accountId);
      if (query.status) w.add((p) => `status = ${p}`, query.status);
      if (query.hostId) w.add((p) => `host_id = ${p}`, query.hostId);
      return pageOf<DevboxRow, Devbox>(db, 'devboxes', w, query, toDevbox);
    },
  };
}
