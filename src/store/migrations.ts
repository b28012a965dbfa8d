/**
 * Schema migrations, versioned by `PRAGMA user_version`. Append only: never edit a
 * migration that has shipped; add the next one.
 */
import type Database from 'better-sqlite3';
import { BLUEPRINT_MIGRATION } from './blueprints.js';
import { AGENT_MIGRATION } from './sqlite/agent-schema.js';

export const MIGRATIONS: readonly string[] = [
  // 1: tokens, policies, devboxes, the addresses of running devboxes, and a change log
  //    other processes on the same file follow.
  `
  CREATE TABLE api_tokens (
    token_hash     TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL,
    source         TEXT NOT NULL CHECK (source IN ('config', 'generated')),
    create_time_ms INTEGER NOT NULL
  );

  CREATE TABLE network_policies (
    id             TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL,
    name           TEXT NOT NULL,
    description    TEXT,
    egress         TEXT NOT NULL CHECK (json_valid(egress)),
    version        INTEGER NOT NULL DEFAULT 1,
    create_time_ms INTEGER NOT NULL,
    update_time_ms INTEGER NOT NULL,
    UNIQUE (account_id, name)
  );
  CREATE INDEX network_policies_account ON network_policies (account_id, id);

  CREATE TABLE devboxes (
    id                TEXT PRIMARY KEY,
    account_id        TEXT NOT NULL,
    name              TEXT,
    status            TEXT NOT NULL,
    network_policy_id TEXT,
    addresses         TEXT NOT NULL CHECK (json_valid(addresses)),
    metadata          TEXT NOT NULL CHECK (json_valid(metadata)),
    tunnel_key        TEXT NOT NULL UNIQUE,
    password_hash     TEXT NOT NULL,
    create_time_ms    INTEGER NOT NULL,
    end_time_ms       INTEGER
  );
  CREATE INDEX devboxes_account ON devboxes (account_id, id);
  CREATE INDEX devboxes_policy ON devboxes (network_policy_id) WHERE status = 'running';
  CREATE INDEX devboxes_status ON devboxes (status);

  -- One row per source address of a running devbox: the primary key makes addresses
  -- unique among running devboxes. Rows go when the devbox shuts down.
  CREATE TABLE running_addresses (
    address   TEXT PRIMARY KEY,
    devbox_id TEXT NOT NULL REFERENCES devboxes (id) ON DELETE CASCADE
  );
  CREATE INDEX running_addresses_devbox ON running_addresses (devbox_id);

  CREATE TABLE change_log (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL CHECK (kind IN ('policy', 'devbox')),
    id         TEXT NOT NULL,
    account_id TEXT NOT NULL
  );
  `,
  // 2: report-only policies (issue 15).
  `
  ALTER TABLE network_policies ADD COLUMN enforcement TEXT NOT NULL DEFAULT 'enforce' CHECK (enforcement IN ('enforce', 'report'));
  `,
  // 3: the per-devbox record of recent denials and would-denials, one row per destination,
  //    door, reason and decision (counts and first/last seen merged by batch upserts).
  `
  CREATE TABLE egress_events (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL,
    devbox_id     TEXT NOT NULL,
    policy_id     TEXT,
    host          TEXT NOT NULL,
    port          INTEGER NOT NULL,
    door          TEXT NOT NULL,
    reason        TEXT NOT NULL,
    decision      TEXT NOT NULL CHECK (decision IN ('deny', 'would_deny')),
    count         INTEGER NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms  INTEGER NOT NULL,
    UNIQUE (devbox_id, host, port, door, reason, decision)
  );
  CREATE INDEX egress_events_account ON egress_events (account_id, id);
  CREATE INDEX egress_events_devbox_seen ON egress_events (devbox_id, last_seen_ms);
  CREATE INDEX egress_events_seen ON egress_events (last_seen_ms);
  `,
  // 4: blueprints, their build addresses, and the blueprint a devbox was created from.
  BLUEPRINT_MIGRATION,
  // 5: tokens get an id, a display prefix, an origin (configured | created | first-start)
  //    and a last-used time, so `egress-gateway tokens` can list and revoke them; a small
  //    key/value table the readiness probe writes to.
  `
  CREATE TABLE api_tokens_v2 (
    id             TEXT PRIMARY KEY,
    token_hash     TEXT NOT NULL UNIQUE,
    prefix         TEXT,
    account_id     TEXT NOT NULL,
    origin         TEXT NOT NULL CHECK (origin IN ('configured', 'created', 'first-start')),
    create_time_ms INTEGER NOT NULL,
    last_used_ms   INTEGER
  );
  INSERT INTO api_tokens_v2 (id, token_hash, prefix, account_id, origin, create_time_ms)
    SELECT 'tok_' || lower(hex(randomblob(11))), token_hash, NULL, account_id,
           CASE source WHEN 'config' THEN 'configured' ELSE 'first-start' END, create_time_ms
    FROM api_tokens;
  DROP TABLE api_tokens;
  ALTER TABLE api_tokens_v2 RENAME TO api_tokens;
  CREATE INDEX api_tokens_account ON api_tokens (account_id);

  CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT
  );
  `,
  // 6: one spelling per door (issue #12): recorded denials say transparent-tls and
  //    transparent-http, as the metrics and logs now do.
  `
  UPDATE egress_events SET door = 'transparent-tls' WHERE door = 'tls';
  UPDATE egress_events SET door = 'transparent-http' WHERE door = 'transparent_http';
  `,
  // 7: fleet mode (issue 13): a devbox's host, and change records that carry the value the
  //    change left (JSON, NULL: deleted) and the devbox's host, for the change feed.
  `
  ALTER TABLE devboxes ADD COLUMN host_id TEXT;
  CREATE INDEX devboxes_host ON devboxes (account_id, host_id, id);
  ALTER TABLE change_log ADD COLUMN value TEXT CHECK (value IS NULL OR json_valid(value));
  ALTER TABLE change_log ADD COLUMN host_id TEXT;
  `,
  // 8: agent gateway and MCP hub resources (issue 21), see sqlite/agent-schema.ts.
  AGENT_MIGRATION,
];

/** Brings the database to the latest version; each step in its own transaction. */
export function migrate(db: Database.Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(`schema version ${current} is newer than this build knows (${MIGRATIONS.length}); upgrade egress-gateway`);
  }
  for (let v = current; v < MIGRATIONS.length; v++) {
    const step = db.transaction(() => {
      // Another process may have migrated while we waited for the write lock.
      const now = db.pragma('user_version', { simple: true }) as number;
      if (now > v) return;
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    });
    step.immediate();
  }
}
