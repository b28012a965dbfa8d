/**
 * The rules a write checks inside its transaction (the account's advisory lock held), worded
 * as the sqlite store words them: policy exists, addresses free, quotas.
 */
import { type EgressRules, LIST_FIELDS, entryCount } from '../../policy/model.js';
import { type Quotas, type StoreError, addressInUse, addressQuotaExceeded, addressUnavailable, blueprintQuotaExceeded, devboxQuotaExceeded, duplicateName, entriesPerAccountExceeded, entriesPerPolicyExceeded, policyNotFound, policyQuotaExceeded, quotaExceeded } from '../types.js';
import type { Query } from './db.js';

export { duplicateName, quotaExceeded };

export async function requirePolicy(q: Query, accountId: string, policyId: string, field = 'launch_parameters.network_policy_id'): Promise<void> {
  const r = await q('SELECT 1 FROM network_policies WHERE id = $1 AND account_id = $2', [policyId, accountId]);
  if (r.length === 0) throw policyNotFound(policyId, field);
}

/** The refusal for an address someone holds: its owner named only to the owner's own account. */
async function heldError(q: Query, accountId: string, address: string, owner: string): Promise<StoreError> {
  const build = owner.startsWith('bpt_');
  const rows = await q<{ account_id: string }>(`SELECT account_id FROM ${build ? 'blueprints' : 'devboxes'} WHERE id = $1`, [owner]);
  if (rows[0]?.account_id !== accountId) return addressUnavailable(address);
  return addressInUse(address, owner);
}

/** The addresses, deduplicated, if no running devbox or active build holds one of them. */
export async function freeAddresses(q: Query, accountId: string, wanted: readonly string[]): Promise<string[]> {
  const addresses = [...new Set(wanted)];
  if (addresses.length === 0) return addresses;
  const held = await q<{ address: string; owner_id: string }>('SELECT address, owner_id FROM held_addresses WHERE address = ANY($1::text[])', [addresses]);
  const owners = new Map(held.map((r) => [r.address, r.owner_id]));
  for (const a of addresses) {
    const owner = owners.get(a);
    if (owner !== undefined) throw await heldError(q, accountId, a, owner);
  }
  return addresses;
}

/** Takes the addresses for owner; one taken meanwhile by another account's write is refused as held. */
export async function holdAddresses(q: Query, accountId: string, owner: string, addresses: readonly string[]): Promise<void> {
  if (addresses.length === 0) return;
  const got = await q<{ address: string }>('INSERT INTO held_addresses (address, owner_id) SELECT unnest($1::text[]), $2 ON CONFLICT (address) DO NOTHING RETURNING address', [addresses, owner]);
  if (got.length === addresses.length) return;
  const mine = new Set(got.map((r) => r.address));
  const lost = addresses.find((a) => !mine.has(a))!;
  const [row] = await q<{ owner_id: string }>('SELECT owner_id FROM held_addresses WHERE address = $1', [lost]);
  throw await heldError(q, accountId, lost, row?.owner_id ?? '');
}

const entries = entryCount;
/** SQL summing the list fields' lengths of the stored egress (JSON text). */
const ENTRIES_SQL = LIST_FIELDS.map((f) => `coalesce(json_array_length((egress::json)->'${f}'), 0)`).join(' + ');

/** The policy quotas for `egress` becoming policy `id` (new when null). */
export async function checkPolicyQuotas(q: Query, quotas: Quotas | null, accountId: string, id: string | null, egress: EgressRules): Promise<void> {
  if (quotas === null) return;
  if (id === null) {
    const [{ n }] = (await q<{ n: number }>('SELECT count(*)::bigint AS n FROM network_policies WHERE account_id = $1', [accountId])) as [{ n: number }];
    if (n >= quotas.policiesPerAccount) throw policyQuotaExceeded(quotas);
  }
  const mine = entries(egress);
  if (mine > quotas.entriesPerPolicy) throw entriesPerPolicyExceeded(quotas, mine);
  const [{ n: others }] = (await q<{ n: number }>(
    `SELECT coalesce(sum(${ENTRIES_SQL}), 0)::bigint AS n
    FROM network_policies WHERE account_id = $1 AND id IS DISTINCT FROM $2`,
    [accountId, id],
  )) as [{ n: number }];
  const total = mine + others;
  if (total > quotas.entriesPerAccount) throw entriesPerAccountExceeded(quotas, total);
}

export async function checkDevboxQuotas(q: Query, quotas: Quotas | null, accountId: string, addresses: number): Promise<void> {
  if (quotas === null) return;
  const [{ n }] = (await q<{ n: number }>(`SELECT count(*)::bigint AS n FROM devboxes WHERE account_id = $1 AND status = 'running'`, [accountId])) as [{ n: number }];
  if (n >= quotas.devboxesPerAccount) throw devboxQuotaExceeded(quotas);
  await checkAddressQuota(q, quotas, accountId, addresses);
}

/** held_addresses holds the addresses of running devboxes and of active builds alike: both count. */
async function checkAddressQuota(q: Query, quotas: Quotas, accountId: string, addresses: number): Promise<void> {
  const [{ n: held }] = (await q<{ n: number }>(
    `SELECT count(*)::bigint AS n FROM held_addresses h
    WHERE h.owner_id IN (SELECT id FROM devboxes WHERE account_id = $1 AND status = 'running' UNION ALL SELECT id FROM blueprints WHERE account_id = $1)`,
    [accountId],
  )) as [{ n: number }];
  if (held + addresses > quotas.addressesPerAccount) throw addressQuotaExceeded(quotas, held + addresses);
}

/** A new blueprint: the blueprints quota, and its build's addresses toward the account's addresses. */
export async function checkBlueprintQuotas(q: Query, quotas: Quotas | null, accountId: string, addresses: number): Promise<void> {
  if (quotas === null) return;
  const [{ n }] = (await q<{ n: number }>('SELECT count(*)::bigint AS n FROM blueprints WHERE account_id = $1', [accountId])) as [{ n: number }];
  if (n >= quotas.blueprintsPerAccount) throw blueprintQuotaExceeded(quotas);
  await checkAddressQuota(q, quotas, accountId, addresses);
}
