/**
 * The PostgreSQL schema, versioned in schema_migrations. Append only: never edit a migration
 * that has shipped; add the next one. Replicas starting at once migrate one at a time under
 * a session advisory lock; each step runs in its own transaction.
 *
 * Ids sort bytewise (COLLATE "C") as in sqlite, so cursor pages agree between the backends.
 * JSON columns are text, as in sqlite: a value reads back byte for byte (jsonb reorders keys).
 */
import type pg from 'pg';

/** Advisory lock keys (first int4 of the two-key form): one namespace per purpose. */
export const LOCK = { migrate: 0x6567_7701, account: 0x6567_7702, feed: 0x6567_7703, tokens: 0x6567_7704 } as const;

export const PG_MIGRATIONS: readonly string[] = [
  // 1: tokens, policies, devboxes, blueprints, the addresses held by running devboxes and
  //    active builds (one table: the primary key makes an address unique among both),
  //    the denial record, the change log (outbox) and a small key/value table.
  `
  CREATE TABLE api_tokens (
    id             TEXT COLLATE "C" PRIMARY KEY,
    token_hash     TEXT NOT NULL UNIQUE,
    prefix         TEXT,
    account_id     TEXT NOT NULL,
    origin         TEXT NOT NULL CHECK (origin IN ('configured', 'created', 'first-start')),
    create_time_ms BIGINT NOT NULL,
    last_used_ms   BIGINT
  );
  CREATE INDEX api_tokens_account ON api_tokens (account_id);

  CREATE TABLE network_policies (
    id             TEXT COLLATE "C" PRIMARY KEY,
    account_id     TEXT NOT NULL,
    name           TEXT NOT NULL,
    description    TEXT,
    egress         TEXT NOT NULL,
    enforcement    TEXT NOT NULL DEFAULT 'enforce' CHECK (enforcement IN ('enforce', 'report')),
    version        INTEGER NOT NULL DEFAULT 1,
    create_time_ms BIGINT NOT NULL,
    update_time_ms BIGINT NOT NULL,
    UNIQUE (account_id, name)
  );
  CREATE INDEX network_policies_account ON network_policies (account_id, id);

  CREATE TABLE devboxes (
    id                TEXT COLLATE "C" PRIMARY KEY,
    account_id        TEXT NOT NULL,
    name              TEXT,
    status            TEXT NOT NULL,
    network_policy_id TEXT,
    addresses         TEXT NOT NULL,
    metadata          TEXT NOT NULL,
    tunnel_key        TEXT NOT NULL UNIQUE,
    password_hash     TEXT NOT NULL,
    create_time_ms    BIGINT NOT NULL,
    end_time_ms       BIGINT,
    blueprint_id      TEXT,
    host_id           TEXT
  );
  CREATE INDEX devboxes_account ON devboxes (account_id, id);
  CREATE INDEX devboxes_host ON devboxes (account_id, host_id, id);
  CREATE INDEX devboxes_policy ON devboxes (network_policy_id) WHERE status = 'running';

  CREATE TABLE blueprints (
    id                       TEXT COLLATE "C" PRIMARY KEY,
    account_id               TEXT NOT NULL,
    name                     TEXT NOT NULL,
    status                   TEXT NOT NULL CHECK (status IN ('queued', 'provisioning', 'building', 'failed', 'build_complete')),
    failure_reason           TEXT,
    network_policy_id        TEXT,
    launch_network_policy_id TEXT,
    addresses                TEXT NOT NULL,
    metadata                 TEXT NOT NULL,
    parameters               TEXT NOT NULL,
    password_hash            TEXT NOT NULL,
    create_time_ms           BIGINT NOT NULL,
    build_finish_time_ms     BIGINT
  );
  CREATE INDEX blueprints_account ON blueprints (account_id, id);

  CREATE TABLE held_addresses (
    address  TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL
  );
  CREATE INDEX held_addresses_owner ON held_addresses (owner_id);

  CREATE TABLE egress_events (
    id            TEXT COLLATE "C" PRIMARY KEY,
    account_id    TEXT NOT NULL,
    devbox_id     TEXT NOT NULL,
    policy_id     TEXT,
    host          TEXT NOT NULL,
    port          INTEGER NOT NULL,
    door          TEXT NOT NULL,
    reason        TEXT NOT NULL,
    decision      TEXT NOT NULL CHECK (decision IN ('deny', 'would_deny')),
    count         BIGINT NOT NULL,
    first_seen_ms BIGINT NOT NULL,
    last_seen_ms  BIGINT NOT NULL,
    UNIQUE (devbox_id, host, port, door, reason, decision)
  );
  CREATE INDEX egress_events_account ON egress_events (account_id, id);
  CREATE INDEX egress_events_seen ON egress_events (last_seen_ms);

  CREATE TABLE change_log (
    seq        BIGINT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('policy', 'devbox')),
    id         TEXT NOT NULL,
    account_id TEXT NOT NULL,
    host_id    TEXT,
    value      TEXT
  );

  CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT
  );
  `,
  // 2: agent gateway and MCP hub resources (issue 21): secrets (sealed values only), gateway
  //    and MCP configs (one table, kind), minted agent tokens (SHA-256 of the text only), the
  //    specs a devbox was created with, and change records of those kinds.
  `
  CREATE TABLE secrets (
    id             TEXT COLLATE "C" PRIMARY KEY,
    account_id     TEXT NOT NULL,
    name           TEXT NOT NULL,
    ciphertext     TEXT NOT NULL,
    create_time_ms BIGINT NOT NULL,
    update_time_ms BIGINT NOT NULL,
    UNIQUE (account_id, name)
  );
  CREATE INDEX secrets_account ON secrets (account_id, id);

  CREATE TABLE agent_configs (
    id             TEXT COLLATE "C" PRIMARY KEY,
    kind           TEXT NOT NULL CHECK (kind IN ('gateway', 'mcp')),
    account_id     TEXT NOT NULL,
    name           TEXT NOT NULL,
    endpoint       TEXT NOT NULL,
    auth_mechanism TEXT NOT NULL,
    custom_headers TEXT NOT NULL,
    allowed_tools  TEXT,
    description    TEXT,
    create_time_ms BIGINT NOT NULL,
    update_time_ms BIGINT NOT NULL,
    UNIQUE (kind, account_id, name)
  );
  CREATE INDEX agent_configs_account ON agent_configs (kind, account_id, id);

  CREATE TABLE agent_tokens (
    id             TEXT COLLATE "C" PRIMARY KEY,
    token_hash     TEXT NOT NULL UNIQUE,
    kind           TEXT NOT NULL CHECK (kind IN ('gateway', 'mcp')),
    account_id     TEXT NOT NULL,
    devbox_id      TEXT NOT NULL,
    config_id      TEXT NOT NULL,
    secret_id      TEXT NOT NULL,
    env_name       TEXT,
    create_time_ms BIGINT NOT NULL
  );
  CREATE INDEX agent_tokens_devbox ON agent_tokens (devbox_id);
  CREATE INDEX agent_tokens_config ON agent_tokens (config_id);
  CREATE INDEX agent_tokens_secret ON agent_tokens (secret_id);

  ALTER TABLE devboxes ADD COLUMN agent_specs TEXT;

  ALTER TABLE change_log DROP CONSTRAINT IF EXISTS change_log_kind_check;
  ALTER TABLE change_log ADD CONSTRAINT change_log_kind_check CHECK (kind IN ('policy', 'devbox', 'secret', 'gateway_config', 'mcp_config', 'agent_token'));
  `,
  // 3: the index the denial record's per-devbox cap sorts by (ORDER BY last_seen_ms within a
  //    devbox), which sqlite has had since its migration 3 (store/indexes.ts lists both schemas').
  `
  CREATE INDEX IF NOT EXISTS egress_events_devbox_seen ON egress_events (devbox_id, last_seen_ms);
  `,
];

/** Brings the database to the latest version (several replicas may call this at once). */
export async function migratePg(client: pg.ClientBase): Promise<void> {
  await client.query('SELECT pg_advisory_lock($1, 0)', [LOCK.migrate]);
  try {
    await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_ms BIGINT NOT NULL)');
    const { rows } = await client.query<{ v: number | null }>('SELECT max(version) AS v FROM schema_migrations');
    const current = Number(rows[0]?.v ?? 0);
    if (current > PG_MIGRATIONS.length) {
      throw new Error(`schema version ${current} is newer than this build knows (${PG_MIGRATIONS.length}); upgrade egress-gateway`);
    }
    for (let v = current; v < PG_MIGRATIONS.length; v++) {
      await client.query('BEGIN');
      try {
        await client.query(PG_MIGRATIONS[v]!);
        await client.query('INSERT INTO schema_migrations (version, applied_ms) VALUES ($1, $2)', [v + 1, Date.now()]);
        await client.query('COMMIT');
      } catch (e) {
        await client.query('ROLLBACK').catch(() => {});
        throw e;
      }
    }
  } finally {
    await client.query('SELECT pg_advisory_unlock($1, 0)', [LOCK.migrate]).catch(() => {});
  }
}
