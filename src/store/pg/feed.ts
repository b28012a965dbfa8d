/** The change feed over PostgreSQL's change_log (the outbox every write appends to). */
import { type BlueprintRow, buildRuntime, toBlueprint } from '../blueprints.js';
import { type ChangeFeed, toChangeRecord } from '../change-feed.js';
import type { McpConfig } from '../../policy/credentials.js';
import { type AgentConfigRow, type AgentTokenRow, type SecretRow, toGatewayConfig, toMcpConfig } from '../agents.js';
import { type DevboxRow, type PolicyRow, toDevbox, toPolicy } from '../rows.js';
import type { PgDb } from './db.js';

interface LogRow {
  seq: number;
  kind: string;
  id: string;
  account_id: string;
  host_id: string | null;
  value: string | null;
}

export function pgFeed(db: PgDb): ChangeFeed {
  return {
    async changesSince(after, limit) {
      return (await db.query<LogRow>('SELECT seq, kind, id, account_id, host_id, value FROM change_log WHERE seq > $1 ORDER BY seq LIMIT $2', [after, limit])).map(toChangeRecord);
    },
    async lastSeq() {
      return Number((await db.query<{ s: number }>('SELECT coalesce(max(seq), 0)::bigint AS s FROM change_log'))[0]!.s);
    },
    // One REPEATABLE READ snapshot: every row it returns is as of `seq` (a write commits its
    // rows and its change records together).
    snapshot: () =>
      db.readConsistent(async (q) => {
        const [{ s }] = (await q<{ s: number }>('SELECT coalesce(max(seq), 0)::bigint AS s FROM change_log')) as [{ s: number }];
        const policies = (await q<PolicyRow>('SELECT * FROM network_policies ORDER BY id')).map(toPolicy);
        const devboxes = (await q<DevboxRow>(`SELECT * FROM devboxes WHERE status = 'running' ORDER BY id`)).map(toDevbox);
        const builds = (await q<BlueprintRow>(`SELECT * FROM blueprints WHERE status IN ('queued', 'provisioning', 'building') ORDER BY id`)).map((b) => buildRuntime(toBlueprint(b)));
        const configs = await q<AgentConfigRow>('SELECT * FROM agent_configs ORDER BY id');
        const agents = {
          secrets: await q<SecretRow>('SELECT * FROM secrets ORDER BY id'),
          gatewayConfigs: configs.filter((c) => c.kind === 'gateway').map(toGatewayConfig),
          mcpConfigs: configs.filter((c) => c.kind === 'mcp').map((c): McpConfig => toMcpConfig(c)),
          tokens: await q<AgentTokenRow>(`SELECT t.* FROM agent_tokens t JOIN devboxes d ON d.id = t.devbox_id AND d.status = 'running' ORDER BY t.id`),
        };
        return { seq: Number(s), policies, devboxes: [...devboxes, ...builds], agents };
      }),
  };
}
