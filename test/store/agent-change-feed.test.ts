/**
 * Agent resources on the change feed, both backends: every write (secret, gateway and MCP
 * config, minted token) is a record in commit order; a secret's record carries only its sealed
 * value and a token's only its hash. A follower that followed the records and one loaded from
 * a snapshot answer the doors alike, and both drop a token whose devbox shut down or whose
 * secret or config was deleted.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ControlStore } from '../../src/store/backend.js';
import { FeedFollower } from '../../src/store/feed-follower.js';
import { openControlStore } from '../../src/store/open.js';
import { SecretBox } from '../../src/store/secret-box.js';
import { sharedPostgres } from '../support/postgres.js';

const BUDGET = 90_000;
const sha256 = (t: string) => createHash('sha256').update(t).digest('hex');

beforeAll(async () => {
  await sharedPostgres();
}, 120_000);

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'egw-agent-feed-'));
  dirs.push(d);
  return d;
}

describe.each(['sqlite', 'postgres'] as const)('agent resources on the %s change feed', (backend) => {
  const open = async (): Promise<{ s: ControlStore; box: SecretBox }> => {
    const dir = tempDir();
    const db = backend === 'postgres' ? await (await sharedPostgres()).createDatabase() : join(dir, 'egress.db');
    const box = new SecretBox(join(dir, 'secrets.key'), true);
    return { s: await openControlStore(db, { box }), box };
  };

  it(
    'records secrets sealed, configs, and tokens by hash, in commit order',
    async () => {
      const { s, box } = await open();
      try {
        const base = await s.feed.lastSeq();
        const sec = await s.secrets.create('acct', 'API_KEY', 'plain-needle-1');
        await s.secrets.update('acct', 'API_KEY', 'plain-needle-2');
        const gw = await s.gatewayConfigs.create('acct', { name: 'api', endpoint: 'https://api.example.com', auth_mechanism: { type: 'bearer' }, custom_headers: [], description: null });
        const mcp = await s.mcpConfigs.create('acct', { name: 'gh-ro', endpoint: 'https://mcp.example.com', auth_mechanism: { type: 'bearer' }, custom_headers: [], description: null, allowed_tools: ['search_*'] });
        const { devbox } = await s.devboxes.create('acct', { addresses: ['10.9.0.1'] });
        const t = await s.agentTokens.mint('acct', { kind: 'gateway', devboxId: devbox.id, config: gw.id, secret: 'API_KEY' });
        await s.gatewayConfigs.delete('acct', gw.id);

        const got = await s.feed.changesSince(base, 100);
        expect(got.map((c) => c.seq)).toEqual(got.map((_, i) => base + i + 1));
        expect(got.map((c) => c.kind)).toEqual(['secret', 'secret', 'gateway_config', 'mcp_config', 'devbox', 'agent_token', 'gateway_config']);
        const text = JSON.stringify(got);
        expect(text).not.toContain('plain-needle');
        expect(text).not.toContain(t.token);
        const sealed = got[1]!.value as { ciphertext: string; id: string };
        expect(sealed.id).toBe(sec.id);
        expect(box.open('acct', sec.id, sealed.ciphertext)).toBe('plain-needle-2');
        expect(got[3]!.value).toMatchObject({ id: mcp.id, allowed_tools: ['search_*'] });
        expect(got[5]!.value).toMatchObject({ token_hash: sha256(t.token), devbox_id: devbox.id, config_id: gw.id, secret_id: sec.id });
        expect(got[6]!.value).toBeNull();
      } finally {
        await s.close();
      }
    },
    BUDGET,
  );

  it(
    'a following copy and a snapshot-loaded copy answer alike, and drop revoked tokens',
    async () => {
      const { s, box } = await open();
      const following = await FeedFollower.start(s.feed, { pollMs: 3_600_000, box });
      try {
        await s.secrets.create('acct', 'K1', 'v1');
        await s.secrets.create('acct', 'K2', 'v2');
        const gw = await s.gatewayConfigs.create('acct', { name: 'api', endpoint: 'https://api.example.com', auth_mechanism: { type: 'bearer' }, custom_headers: [], description: null });
        const d1 = (await s.devboxes.create('acct', { addresses: ['10.9.1.1'] })).devbox;
        const d2 = (await s.devboxes.create('acct', { addresses: ['10.9.1.2'] })).devbox;
        const viaSystem = await s.agentTokens.mint('acct', { kind: 'gateway', devboxId: d1.id, config: 'anthropic', secret: 'K1' });
        const viaConfig = await s.agentTokens.mint('acct', { kind: 'gateway', devboxId: d1.id, config: gw.id, secret: 'K1' });
        const viaK2 = await s.agentTokens.mint('acct', { kind: 'gateway', devboxId: d2.id, config: 'openai', secret: 'K2' });
        const onD2 = await s.agentTokens.mint('acct', { kind: 'gateway', devboxId: d2.id, config: 'openai', secret: 'K1' });
        await s.secrets.update('acct', 'K1', 'v1-rotated');
        await following.refresh();

        const tokens = [viaSystem, viaConfig, viaK2, onD2].map((t) => sha256(t.token));
        const answers = async (f: FeedFollower) => ({
          tokens: tokens.map((h) => f.credentials.agentToken(h)?.config_id ?? null),
          k1: f.credentials.secretValue('acct', (await s.secrets.get('acct', 'K1'))!.id),
          foreign: f.credentials.secretValue('other', (await s.secrets.get('acct', 'K1'))!.id),
        });
        const snap = await FeedFollower.start(s.feed, { pollMs: 3_600_000, box });
        try {
          expect(await answers(following)).toEqual({ tokens: ['gwc_anthropic', gw.id, 'gwc_openai', 'gwc_openai'], k1: 'v1-rotated', foreign: undefined });
          expect(await answers(snap)).toEqual(await answers(following));
        } finally {
          snap.close();
        }

        // Revocations: a deleted config, a deleted secret, a shut-down devbox.
        await s.gatewayConfigs.delete('acct', gw.id);
        await s.secrets.delete('acct', 'K2');
        await s.devboxes.shutdown('acct', d2.id);
        await following.refresh();
        const after = await FeedFollower.start(s.feed, { pollMs: 3_600_000, box });
        try {
          for (const f of [following, after]) {
            expect(tokens.map((h) => f.credentials.agentToken(h)?.config_id ?? null)).toEqual(['gwc_anthropic', null, null, null]);
          }
          expect(following.credentials.sizes().tokens).toBe(1);
          expect(after.credentials.sizes()).toEqual({ secrets: 1, gatewayConfigs: 0, mcpConfigs: 0, tokens: 1 });
        } finally {
          after.close();
        }
      } finally {
        following.close();
        await s.close();
      }
    },
    BUDGET,
  );
});
