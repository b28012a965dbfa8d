/**
 * The rules a sqlite write checks inside its transaction: the policy exists, the addresses
 * are free, the account's quotas (worded as pg/checks.ts words them).
 */
import { type EgressRules, LIST_FIELDS, entryCount } from '../../policy/model.js';
import { type Quotas, addressInUse, addressQuotaExceeded, addressUnavailable, blueprintQuotaExceeded, devboxQuotaExceeded, entriesPerAccountExceeded, entriesPerPolicyExceeded, policyNotFound, policyQuotaExceeded } from '../types.js';
import type { SqliteContext } from './context.js';

export class SqliteChecks {
  private quotas: Quotas | null = null;
  private readonly q;

  constructor(ctx: SqliteContext) {
    const p = (sql: string) => ctx.db.prepare(sql);
    this.q = {
      policy: p('SELECT 1 FROM network_policies WHERE id = ? AND account_id = ?').pluck(),
      addressOwner: p(`SELECT devbox_id FROM running_addresses WHERE address = @a
                       UNION ALL SELECT blueprint_id FROM build_addresses WHERE address = @a`).pluck(),
      blueprintAccount: p('SELECT account_id FROM blueprints WHERE id = ?').pluck(),
      devboxAccount: p('SELECT account_id FROM devboxes WHERE id = ?').pluck(),
      policyCount: p('SELECT count(*) FROM network_policies WHERE account_id = ?').pluck(),
      accountEntries: p(`SELECT coalesce(sum(${LIST_FIELDS.map((f) => `coalesce(json_array_length(egress, '$.${f}'), 0)`).join(' + ')}), 0)
                         FROM network_policies WHERE account_id = ? AND id IS NOT ?`).pluck(),
      runningCount: p(`SELECT count(*) FROM devboxes WHERE account_id = ? AND status = 'running'`).pluck(),
      // Addresses held by the account's running devboxes and its active builds (both count toward the quota).
      addressCount: p(`SELECT (SELECT count(*) FROM running_addresses r JOIN devboxes d ON d.id = r.devbox_id WHERE d.account_id = @a)
                            + (SELECT count(*) FROM build_addresses x JOIN blueprints b ON b.id = x.blueprint_id WHERE b.account_id = @a)`).pluck(),
      blueprintCount: p('SELECT count(*) FROM blueprints WHERE account_id = ?').pluck(),
    };
  }

  /** Limits what each account may store from now on (null: none). */
  setQuotas(q: Quotas | null): void {
    this.quotas = q;
  }

  requirePolicy(accountId: string, policyId: string, field = 'launch_parameters.network_policy_id'): void {
    if (this.q.policy.get(policyId, accountId) === undefined) throw policyNotFound(policyId, field);
  }

  /** The addresses, deduplicated, if no running devbox or active build holds one of them. */
  freeAddresses(accountId: string, wanted: readonly string[]): string[] {
    const addresses = [...new Set(wanted)];
    for (const a of addresses) {
      const owner = this.q.addressOwner.get({ a }) as string | undefined;
      if (!owner) continue;
      const build = owner.startsWith('bpt_');
      const ownerAccount = (build ? this.q.blueprintAccount.get(owner) : this.q.devboxAccount.get(owner)) as string | undefined;
      // Name the owner only to its own account; another account gets the words a reserved
      // address gets, which neither say whose it is nor that a devbox there is running.
      if (ownerAccount !== accountId) throw addressUnavailable(a);
      throw addressInUse(a, owner);
    }
    return addresses;
  }

  /** The policy quotas for `egress` becoming policy `id` (new when null). */
  policyQuotas(accountId: string, id: string | null, egress: EgressRules): void {
    const q = this.quotas;
    if (q === null) return;
    if (id === null && (this.q.policyCount.get(accountId) as number) >= q.policiesPerAccount) throw policyQuotaExceeded(q);
    const mine = entryCount(egress);
    if (mine > q.entriesPerPolicy) throw entriesPerPolicyExceeded(q, mine);
    const total = mine + (this.q.accountEntries.get(accountId, id) as number);
    if (total > q.entriesPerAccount) throw entriesPerAccountExceeded(q, total);
  }

  devboxQuotas(accountId: string, addresses: number): void {
    const q = this.quotas;
    if (q === null) return;
    if ((this.q.runningCount.get(accountId) as number) >= q.devboxesPerAccount) throw devboxQuotaExceeded(q);
    this.addressQuota(q, accountId, addresses);
  }

  /** A new blueprint: the blueprints quota, and its build's addresses toward the account's addresses. */
  blueprintQuotas(accountId: string, addresses: number): void {
    const q = this.quotas;
    if (q === null) return;
    if ((this.q.blueprintCount.get(accountId) as number) >= q.blueprintsPerAccount) throw blueprintQuotaExceeded(q);
    this.addressQuota(q, accountId, addresses);
  }

  private addressQuota(q: Quotas, accountId: string, addresses: number): void {
    const held = this.q.addressCount.get({ a: accountId }) as number;
    if (held + addresses > q.addressesPerAccount) throw addressQuotaExceeded(q, held + addresses);
  }
}
