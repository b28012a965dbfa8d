/**
 * The publisher's per-host index of agent resources (src/fleet/agent-scope.ts): a host receives
 * the tokens of its running devboxes, the configs they name (never a system config) and the
 * secrets they and those configs' headers reference, sealed rows as stored; nothing of another
 * account or host. A rotated secret goes to the hosts holding it only; a devbox that stops, a
 * deleted config or secret tombstones tokens first and then what no token on the host still
 * references; a snapshot-built index wants what the records built.
 */
import { describe, expect, it } from 'vitest';
import { AgentScope } from '../../src/fleet/agent-scope.js';
import type { AgentGatewayConfig } from '../../src/policy/credentials.js';
import type { Devbox } from '../../src/policy/model.js';
import type { AgentTokenRow, SecretRow } from '../../src/store/agents.js';
import type { ChangeRecord } from '../../src/store/change-feed.js';

const box = (id: string, host: string | null, account = 'acct', status = 'running'): Devbox => ({ id, account_id: account, status, network_policy_id: null, host_id: host }) as unknown as Devbox;
const secret = (id: string, account = 'acct', ciphertext = `v1.sealed-${id}`): SecretRow => ({ id, account_id: account, name: id.toUpperCase(), ciphertext, create_time_ms: 1, update_time_ms: 1 });
const config = (id: string, headerSecret: string | null = null, account = 'acct'): AgentGatewayConfig => ({
  id,
  account_id: account,
  name: id,
  endpoint: 'https://api.example.test',
  auth_mechanism: { type: 'bearer' },
  custom_headers: headerSecret ? [{ name: 'x-org', secret_id: headerSecret }] : [],
  description: null,
  create_time_ms: 1,
});
const token = (id: string, devbox: string, configId: string, secretId: string, account = 'acct'): AgentTokenRow => ({
  id,
  token_hash: `hash-${id}`,
  kind: 'gateway',
  account_id: account,
  devbox_id: devbox,
  config_id: configId,
  secret_id: secretId,
  env_name: null,
  create_time_ms: 1,
});

let seq = 0;
const D = (d: Devbox): ChangeRecord => ({ seq: ++seq, kind: 'devbox', id: d.id, accountId: d.account_id, hostId: d.host_id ?? null, value: d });
const S = (id: string, v: SecretRow | null, account = 'acct'): ChangeRecord => ({ seq: ++seq, kind: 'secret', id, accountId: account, value: v });
const C = (id: string, v: AgentGatewayConfig | null, account = 'acct'): ChangeRecord => ({ seq: ++seq, kind: 'gateway_config', id, accountId: account, value: v });
const T = (t: AgentTokenRow): ChangeRecord => ({ seq: ++seq, kind: 'agent_token', id: t.id, accountId: t.account_id, value: t });
const keys = (c: { put: Array<{ key: string }>; drop: Array<{ key: string }> }) => ({ put: c.put.map((x) => x.key), drop: c.drop.map((x) => x.key) });

/** h1 runs d1 with token t1 (config gwc_1 whose header uses sec_org, secret sec_key). */
function world(): AgentScope {
  const s = AgentScope.from({ devboxes: [] });
  s.apply(D(box('d1', 'h1')));
  s.apply(S('sec_key', secret('sec_key')));
  s.apply(S('sec_org', secret('sec_org')));
  s.apply(C('gwc_1', config('gwc_1', 'sec_org')));
  return s;
}

describe('agent scope: what each host receives', () => {
  it("a token on h1 puts its secret, its config and the config header's secret before the token, under agent.h1 only", () => {
    const s = world();
    const c = s.apply(T(token('agt_1', 'd1', 'gwc_1', 'sec_key')));
    expect(c.put.map((x) => x.key)).toEqual(['agent.h1.secret.acct.sec_key', 'agent.h1.secret.acct.sec_org', 'agent.h1.gateway_config.acct.gwc_1', 'agent.h1.agent_token.acct.agt_1']);
    expect(c.drop).toEqual([]);
    // Sealed as stored, hash only.
    expect(c.put[0]!.value.value).toMatchObject({ ciphertext: 'v1.sealed-sec_key' });
    expect(c.put[3]!.value.value).toMatchObject({ token_hash: 'hash-agt_1' });
  });

  it('a system config is never published; its token brings only the secret', () => {
    const s = world();
    expect(keys(s.apply(T(token('agt_s', 'd1', 'gwc_anthropic', 'sec_key')))).put).toEqual(['agent.h1.secret.acct.sec_key', 'agent.h1.agent_token.acct.agt_s']);
  });

  it("nothing of another account: a token naming another account's secret or config, or a header naming another account's secret", () => {
    const s = world();
    s.apply(S('sec_other', secret('sec_other', 'other')));
    s.apply(C('gwc_other', config('gwc_other', null, 'other')));
    s.apply(C('gwc_mixed', config('gwc_mixed', 'sec_other')));
    expect(keys(s.apply(T(token('agt_a', 'd1', 'gwc_1', 'sec_other'))))).toEqual({ put: [], drop: [] });
    expect(keys(s.apply(T(token('agt_b', 'd1', 'gwc_other', 'sec_key'))))).toEqual({ put: [], drop: [] });
    expect(keys(s.apply(T(token('agt_c', 'd1', 'gwc_mixed', 'sec_key')))).put).toEqual(['agent.h1.secret.acct.sec_key', 'agent.h1.gateway_config.acct.gwc_mixed', 'agent.h1.agent_token.acct.agt_c']);
  });

  it('a rotated secret goes to the hosts holding it, an unheld one nowhere; a devbox not running or not placed brings nothing', () => {
    const s = world();
    s.apply(D(box('d2', 'h2')));
    s.apply(D(box('d3', null)));
    s.apply(T(token('agt_1', 'd1', 'gwc_1', 'sec_key')));
    expect(keys(s.apply(T(token('agt_3', 'd3', 'gwc_1', 'sec_key'))))).toEqual({ put: [], drop: [] });
    expect(keys(s.apply(S('sec_key', secret('sec_key', 'acct', 'v1.rotated'))))).toEqual({ put: ['agent.h1.secret.acct.sec_key'], drop: [] });
    s.apply(S('sec_idle', secret('sec_idle')));
    expect(keys(s.apply(S('sec_idle', secret('sec_idle', 'acct', 'v1.new'))))).toEqual({ put: [], drop: [] });
  });

  it('a devbox that stops tombstones its token first, then what no token on the host references; a shared secret stays', () => {
    const s = world();
    s.apply(D(box('d1b', 'h1')));
    s.apply(T(token('agt_1', 'd1', 'gwc_1', 'sec_key')));
    s.apply(T(token('agt_2', 'd1b', 'gwc_anthropic', 'sec_key')));
    const c = s.apply(D(box('d1', 'h1', 'acct', 'shutdown')));
    expect(keys(c)).toEqual({ put: [], drop: ['agent.h1.agent_token.acct.agt_1', 'agent.h1.gateway_config.acct.gwc_1', 'agent.h1.secret.acct.sec_org'] });
    expect(c.drop.every((d) => d.value.value === null)).toBe(true);
    expect(s.wanted().map((w) => w.key)).toEqual(['agent.h1.secret.acct.sec_key', 'agent.h1.agent_token.acct.agt_2']);
  });

  it('a deleted secret or config takes the tokens naming it (the feed has no record for them)', () => {
    const s = world();
    s.apply(T(token('agt_1', 'd1', 'gwc_1', 'sec_key')));
    expect(keys(s.apply(S('sec_key', null))).drop).toEqual(['agent.h1.agent_token.acct.agt_1', 'agent.h1.gateway_config.acct.gwc_1', 'agent.h1.secret.acct.sec_key', 'agent.h1.secret.acct.sec_org']);
    const t = world();
    t.apply(T(token('agt_1', 'd1', 'gwc_1', 'sec_key')));
    expect(keys(t.apply(C('gwc_1', null))).drop[0]).toBe('agent.h1.agent_token.acct.agt_1');
    expect(t.wanted()).toEqual([]);
  });

  it('an index built from a snapshot wants what the records built', () => {
    const s = world();
    s.apply(D(box('d2', 'h2')));
    s.apply(T(token('agt_1', 'd1', 'gwc_1', 'sec_key')));
    s.apply(T(token('agt_2', 'd2', 'gwc_anthropic', 'sec_key')));
    const fromSnap = AgentScope.from({
      devboxes: [box('d1', 'h1'), box('d2', 'h2')],
      agents: { secrets: [secret('sec_key'), secret('sec_org')], gatewayConfigs: [config('gwc_1', 'sec_org')], mcpConfigs: [], tokens: [token('agt_1', 'd1', 'gwc_1', 'sec_key'), token('agt_2', 'd2', 'gwc_anthropic', 'sec_key')] },
    });
    const norm = (w: ReturnType<AgentScope['wanted']>) => w.map((x) => `${x.key}=${JSON.stringify(x.value)}`).sort();
    expect(norm(fromSnap.wanted())).toEqual(norm(s.wanted()));
    expect(norm(s.wanted()).filter((k) => k.startsWith('agent.h2.'))).toHaveLength(2);
  });
});
