/**
 * The control plane on PostgreSQL (`--db postgres://…`): one repository per resource over one
 * pool, the change feed over the change_log outbox. Any number of API replicas may serve one
 * database: the rules hold in the database (constraints, row and advisory locks), never in a
 * replica's memory.
 */
import type { ControlStore } from '../backend.js';
import { withoutPassword } from '../../config.js';
import type { Quotas } from '../types.js';
import { PgDb, pgFault } from './db.js';
import { migratePg } from './schema.js';
import { pgTokens } from './tokens.js';
import { pgPolicies } from './policies.js';
import { pgDevboxes } from './devboxes.js';
import { pgBlueprints } from './blueprints.js';
import { pgDenialEvents } from './denial-events.js';
import { pgFeed } from './feed.js';
import { pgSecrets } from './secrets.js';
import { pgAgentConfigs } from './agent-configs.js';
import { pgAgentTokens } from './agent-tokens.js';
import type { SecretBox } from '../secret-box.js';
import type { AgentGatewayConfig, McpConfig } from '../../policy/credentials.js';

export interface PgOptions {
  /** Change records kept behind the newest (the feed's window). */
  changeLogKeep?: number;
  /** Pool size. */
  connections?: number;
  /** Seals secret values; none: secrets cannot be written. */
  box?: SecretBox | null;
}

/** Why the database cannot be opened, in one line (the caller names the setting). */
export class PgOpenError extends Error {}

export async function openPostgres(url: string, opts: PgOptions = {}): Promise<ControlStore> {
  const db = new PgDb(url, opts.changeLogKeep ?? 10_000, opts.connections ?? 10);
  try {
    const client = await db.pool.connect();
    try {
      await migratePg(client);
    } finally {
      client.release();
    }
  } catch (e) {
    await db.close();
    const fault = pgFault(e);
    throw new PgOpenError(`cannot use ${withoutPassword(url)}: ${fault?.reason ?? (e as Error).message}`);
  }
  let quotas: Quotas | null = null;
  const getQuotas = () => quotas;
  return {
    kind: 'postgres',
    location: withoutPassword(url),
    tokens: pgTokens(db),
    policies: pgPolicies(db, getQuotas),
    devboxes: pgDevboxes(db, getQuotas),
    blueprints: pgBlueprints(db),
    denialEvents: pgDenialEvents(db),
    secrets: pgSecrets(db, opts.box ?? null),
    gatewayConfigs: pgAgentConfigs<AgentGatewayConfig>(db, 'gateway'),
    mcpConfigs: pgAgentConfigs<McpConfig>(db, 'mcp'),
    agentTokens: pgAgentTokens(db),
    feed: pgFeed(db),
    setQuotas: (q) => {
      quotas = q;
    },
    onCommit: (l) => db.onCommit(l),
    probeWritable: () => db.probeWritable(),
    close: () => db.close(),
  };
}
