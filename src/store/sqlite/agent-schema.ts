/** The sqlite migration of the agent resources (issue 21); appended to MIGRATIONS (migrations.ts). */

/**
 * 8: secrets (sealed values only), gateway and MCP configs (one table, `kind`), minted agent
 *    tokens (SHA-256 of the text only), the specs a devbox was created with, and a change_log
 *    whose kinds include the agent resources (sqlite cannot alter a CHECK: the table is rebuilt,
 *    its AUTOINCREMENT counter kept so seqs never repeat).
 */
export const AGENT_MIGRATION = `
  CREATE TABLE secrets (
    id             TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL,
    name           TEXT NOT NULL,
    ciphertext     TEXT NOT NULL,
    create_time_ms INTEGER NOT NULL,
    update_time_ms INTEGER NOT NULL,
    UNIQUE (account_id, name)
  );
  CREATE INDEX secrets_account ON secrets (account_id, id);

  CREATE TABLE agent_configs (
    id             TEXT PRIMARY KEY,
    kind           TEXT NOT NULL CHECK (kind IN ('gateway', 'mcp')),
    account_id     TEXT NOT NULL,
    name           TEXT NOT NULL,
    endpoint       TEXT NOT NULL,
    auth_mechanism TEXT NOT NULL CHECK (json_valid(auth_mechanism)),
    custom_headers TEXT NOT NULL CHECK (json_valid(custom_headers)),
    allowed_tools  TEXT CHECK (allowed_tools IS NULL OR json_valid(allowed_tools)),
    description    TEXT,
    create_time_ms INTEGER NOT NULL,
    update_time_ms INTEGER NOT NULL,
    UNIQUE (kind, account_id, name)
  );
  CREATE INDEX agent_configs_account ON agent_configs (kind, account_id, id);

  CREATE TABLE agent_tokens (
    id             TEXT PRIMARY KEY,
    token_hash     TEXT NOT NULL UNIQUE,
    kind           TEXT NOT NULL CHECK (kind IN ('gateway', 'mcp')),
    account_id     TEXT NOT NULL,
    devbox_id      TEXT NOT NULL,
    config_id      TEXT NOT NULL,
    secret_id      TEXT NOT NULL,
    env_name       TEXT,
    create_time_ms INTEGER NOT NULL
  );
  CREATE INDEX agent_tokens_devbox ON agent_tokens (devbox_id);
  CREATE INDEX agent_tokens_config ON agent_tokens (config_id);
  CREATE INDEX agent_tokens_secret ON agent_tokens (secret_id);

  ALTER TABLE devboxes ADD COLUMN agent_specs TEXT CHECK (agent_specs IS NULL OR json_valid(agent_specs));

  CREATE TABLE change_log_v8 (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL CHECK (kind IN ('policy', 'devbox', 'secret', 'gateway_config', 'mcp_config', 'agent_token')),
    id         TEXT NOT NULL,
    account_id TEXT NOT NULL,
    value      TEXT CHECK (value IS NULL OR json_valid(value)),
    host_id    TEXT
  );
  INSERT INTO change_log_v8 (seq, kind, id, account_id, value, host_id) SELECT seq, kind, id, account_id, value, host_id FROM change_log;
  DELETE FROM sqlite_sequence WHERE name = 'change_log_v8';
  INSERT INTO sqlite_sequence (name, seq) SELECT 'change_log_v8', seq FROM sqlite_sequence WHERE name = 'change_log';
  DROP TABLE change_log;
  ALTER TABLE change_log_v8 RENAME TO change_log;
`;
