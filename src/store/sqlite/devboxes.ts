/** Devboxes in sqlite: a running devbox holds its addresses (running_addresses) and its agent tokens. */
import type { Devbox } from '../../policy/model.js';
import { hashPassword } from '../../policy/password.js';
import type { MintedToken } from '../agents.js';
import type { DevboxRepository } from '../backend.js';
import { newId, randomAlnum, randomSecret } from '../ids.js';
import { type DevboxRow, toDevbox } from '../rows.js';
import { type DevboxInput, type DevboxPatch, type DevboxQuery, type Page, StoreError } from '../types.js';
import type { SqliteAgentTokens } from './agent-tokens.js';
import type { SqliteBlueprints } from './blueprints.js';
import type { SqliteChecks } from './checks.js';
import type { SqliteContext, Sync } from './context.js';

export class SqliteDevboxes implements Sync<DevboxRepository> {
  private readonly q;

  constructor(
    private readonly ctx: SqliteContext,
    private readonly checks: SqliteChecks,
    private readonly blueprints: SqliteBlueprints,
    private readonly agentTokens: SqliteAgentTokens,
  ) {
    const p = (sql: string) => ctx.db.prepare(sql);
    this.q = {
      byId: p('SELECT * FROM devboxes WHERE id = ?'),
      running: p(`SELECT * FROM devboxes WHERE status = 'running' ORDER BY id`),
      insert: p(`INSERT INTO devboxes (id, account_id, name, status, network_policy_id, addresses, metadata, tunnel_key, password_hash, create_time_ms, end_time_ms, blueprint_id, host_id)
                 VALUES (@id, @account_id, @name, 'running', @network_policy_id, @addresses, @metadata, @tunnel_key, @password_hash, @create_time_ms, NULL, @blueprint_id, @host_id)`),
      update: p('UPDATE devboxes SET name = @name, metadata = @metadata, network_policy_id = @network_policy_id WHERE id = @id'),
      shutdown: p(`UPDATE devboxes SET status = 'shutdown', end_time_ms = ? WHERE id = ?`),
      insertAddress: p('INSERT INTO running_addresses (address, devbox_id) VALUES (?, ?)'),
      deleteAddresses: p('DELETE FROM running_addresses WHERE devbox_id = ?'),
    };
  }

  /** Any account's devbox (the data plane's read). */
  byId(id: string): Devbox | undefined {
    const r = this.q.byId.get(id) as DevboxRow | undefined;
    return r && toDevbox(r);
  }

  /** Every running devbox, by id. */
  running(): Devbox[] {
    return (this.q.running.all() as DevboxRow[]).map(toDevbox);
  }

  get(accountId: string, id: string): Devbox | undefined {
    const d = this.byId(id);
    return d && d.account_id === accountId ? d : undefined;
  }

  /** The policy a devbox created from a blueprint gets: its own if named, else the blueprint's launch policy. */
  private launchPolicy(accountId: string, input: DevboxInput): string | null {
    if (input.networkPolicyId) return input.networkPolicyId;
    if (!input.blueprintId) return null;
    const b = this.blueprints.get(accountId, input.blueprintId);
    if (!b) throw new StoreError('blueprint_not_found', `blueprint_id: blueprint ${input.blueprintId} does not exist in this account`);
    if (b.status !== 'build_complete') throw new StoreError('blueprint_not_ready', `blueprint_id: blueprint ${b.id} is not built (status ${b.status})`);
    return b.launch_network_policy_id;
  }

  create(accountId: string, input: DevboxInput): { devbox: Devbox; password: string; agentTokens: MintedToken[] } {
    const password = randomSecret(24);
    let agentTokens: MintedToken[] = [];
    const devbox = this.ctx.write((changes) => {
      const policyId = this.launchPolicy(accountId, input);
      if (policyId) this.checks.requirePolicy(accountId, policyId);
      const addresses = this.checks.freeAddresses(accountId, input.addresses ?? []);
      this.checks.devboxQuotas(accountId, addresses.length);
      const now = Date.now();
      const id = newId('dbx_', now);
      this.q.insert.run({
        id,
        account_id: accountId,
        name: input.name ?? null,
        network_policy_id: policyId,
        addresses: JSON.stringify(addresses),
        metadata: JSON.stringify(input.metadata ?? {}),
        tunnel_key: randomAlnum(20),
        password_hash: hashPassword(password),
        create_time_ms: now,
        blueprint_id: input.blueprintId ?? null,
        host_id: input.hostId ?? null,
      });
      for (const a of addresses) this.q.insertAddress.run(a, id);
      changes.push({ kind: 'devbox', id, accountId });
      if (input.agents) agentTokens = this.agentTokens.mintAtCreate(accountId, id, input.agents, changes);
      return this.byId(id)!;
    });
    return { devbox, password, agentTokens };
  }

  update(accountId: string, id: string, patch: DevboxPatch): Devbox {
    return this.ctx.write((changes) => {
      const cur = this.get(accountId, id);
      if (!cur) throw new StoreError('not_found', `devbox ${id} not found`);
      if (patch.networkPolicyId) this.checks.requirePolicy(accountId, patch.networkPolicyId);
      this.q.update.run({
        id,
        name: patch.name === undefined ? cur.name : patch.name,
        metadata: JSON.stringify(patch.metadata ?? cur.metadata),
        network_policy_id: patch.networkPolicyId === undefined ? cur.network_policy_id : patch.networkPolicyId,
      });
      changes.push({ kind: 'devbox', id, accountId });
      return this.byId(id)!;
    });
  }

  shutdown(accountId: string, id: string): Devbox {
    return this.ctx.write((changes) => {
      const cur = this.get(accountId, id);
      if (!cur) throw new StoreError('not_found', `devbox ${id} not found`);
      if (cur.status === 'shutdown') return cur;
      this.q.shutdown.run(Date.now(), id);
      this.q.deleteAddresses.run(id);
      this.agentTokens.devboxStopped(id);
      changes.push({ kind: 'devbox', id, accountId });
      return this.byId(id)!;
    });
  }

  list(accountId: string, query: DevboxQuery): Page<Devbox> {
    const where = ['account_id = @account'];
    const params: Record<string, unknown> = { account: accountId };
    if (query.status) {
      where.push('status = @status');
      params.status = query.status;
    }
    if (query.hostId) {
      where.push('host_id = @host');
      params.host = query.hostId;
    }
    return this.ctx.page<DevboxRow, Devbox>('devboxes', where, params, query, toDevbox);
  }
}
