/**
 * The schema's indexes, stated once for both backends: every index a query of either backend
 * relies on, by name, table and columns (and whether it covers only some rows). The migrations
 * that create them are history (append only: sqlite in migrations.ts, PostgreSQL in
 * pg/schema.ts); test/store/schema-indexes.test.ts migrates a new database of each kind and
 * checks that it holds exactly these, so a migration that forgets one on one side fails there.
 */
export interface IndexSpec {
  table: string;
  columns: readonly string[];
  /** Covers only the rows a WHERE names (a partial index). */
  partial?: true;
}

/** The indexes both schemas have. */
export const STORE_INDEXES: Readonly<Record<string, IndexSpec>> = {
  api_tokens_account: { table: 'api_tokens', columns: ['account_id'] },
  network_policies_account: { table: 'network_policies', columns: ['account_id', 'id'] },
  devboxes_account: { table: 'devboxes', columns: ['account_id', 'id'] },
  devboxes_host: { table: 'devboxes', columns: ['account_id', 'host_id', 'id'] },
  /** Running devboxes on a policy (a policy in use is not deleted). */
  devboxes_policy: { table: 'devboxes', columns: ['network_policy_id'], partial: true },
  blueprints_account: { table: 'blueprints', columns: ['account_id', 'id'] },
  egress_events_account: { table: 'egress_events', columns: ['account_id', 'id'] },
  /** The denial record's per-devbox cap keeps a devbox's newest rows (ORDER BY last_seen_ms). */
  egress_events_devbox_seen: { table: 'egress_events', columns: ['devbox_id', 'last_seen_ms'] },
  /** The denial record's expiry. */
  egress_events_seen: { table: 'egress_events', columns: ['last_seen_ms'] },
  secrets_account: { table: 'secrets', columns: ['account_id', 'id'] },
  agent_configs_account: { table: 'agent_configs', columns: ['kind', 'account_id', 'id'] },
  agent_tokens_devbox: { table: 'agent_tokens', columns: ['devbox_id'] },
  agent_tokens_config: { table: 'agent_tokens', columns: ['config_id'] },
  agent_tokens_secret: { table: 'agent_tokens', columns: ['secret_id'] },
};

/** Indexes of tables or queries only sqlite has (addresses in two tables, the running-devbox scan). */
export const SQLITE_ONLY_INDEXES: Readonly<Record<string, IndexSpec>> = {
  devboxes_status: { table: 'devboxes', columns: ['status'] },
  running_addresses_devbox: { table: 'running_addresses', columns: ['devbox_id'] },
  blueprints_active: { table: 'blueprints', columns: ['status'], partial: true },
};

/** Indexes of tables only PostgreSQL has (one table of held addresses). */
export const PG_ONLY_INDEXES: Readonly<Record<string, IndexSpec>> = {
  held_addresses_owner: { table: 'held_addresses', columns: ['owner_id'] },
};
