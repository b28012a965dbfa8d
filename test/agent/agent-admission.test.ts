/**
 * The credential doors' own checks, below the API (defence in depth: the store's minting refuses
 * these, the doors refuse them again if a token, config or secret ever disagrees): admission
 * per request (token kind, devbox at the address, account of devbox, config and secret, the
 * toggle) and the headers built for the upstream (custom headers that would smuggle a line, a
 * second Authorization, Host or the mechanism's header are never sent).
 */
import type http from 'node:http';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { type Admitted, admitAgent } from '../../src/doors/floor/agent-admission.js';
import type { AgentContext } from '../../src/doors/floor/agent-server.js';
import { AgentUpstream, hasDotSegment, parseEndpoint } from '../../src/doors/floor/agent-upstream.js';
import { Gate } from '../../src/doors/floor/gate.js';
import type { AgentGatewayConfig } from '../../src/policy/credentials.js';
import { PolicyEngine } from '../../src/policy/engine.js';
import { MemoryCredentials } from '../../src/policy/memory-credentials.js';
import { MemorySource } from '../../src/policy/memory-source.js';
import type { Resolver } from '../../src/resolver/resolver.js';

function setup() {
  const source = new MemorySource();
  const on = source.putPolicy({ id: 'npol_on', account_id: 'acct-a', egress: { allow_agent_gateway: true, allow_mcp_gateway: true } });
  const off = source.putPolicy({ id: 'npol_off', account_id: 'acct-a', egress: {} });
  source.putDevbox({ id: 'dbx_a', account_id: 'acct-a', network_policy_id: on.id, addresses: ['10.0.0.1'] });
  source.putDevbox({ id: 'dbx_off', account_id: 'acct-a', network_policy_id: off.id, addresses: ['10.0.0.2'] });
  source.putDevbox({ id: 'dbx_b', account_id: 'acct-b', network_policy_id: null, addresses: ['10.0.0.3'] });
  const engine = new PolicyEngine(source, { toggles: { agentGateway: [], mcpGateway: [], mirrors: [] }, allowPrivate: [], tunnelDomain: 'tunnel.test' });
  const log = pino({ level: 'silent' });
  const resolver: Resolver = { resolve: async () => [] };
  const creds = new MemoryCredentials();
  const ctx = { config: { idleTimeoutMs: 1000, connectTimeoutMs: 1000, upstreamCaFile: null }, engine, gate: new Gate(engine, resolver, log), resolver, log, credentials: creds } as unknown as AgentContext;
  const secA = creds.putSecret('acct-a', 'sk-A');
  const secB = creds.putSecret('acct-b', 'sk-B');
  const gwA = creds.putGatewayConfig({ account_id: 'acct-a', name: 'a', endpoint: 'https://api.example.test', auth_mechanism: { type: 'header', key: 'x-api-key' } });
  const gwB = creds.putGatewayConfig({ account_id: 'acct-b', name: 'b', endpoint: 'https://api.example.test', auth_mechanism: { type: 'bearer' } });
  return { source, engine, ctx, creds, secA, secB, gwA, gwB };
}

const request = (from: string, headers: string[]) => ({ socket: { remoteAddress: from }, rawHeaders: headers }) as unknown as http.IncomingMessage;

describe('admission below the API', () => {
  it('admits the devbox at its address with its own config and secret', () => {
    const { ctx, creds, secA, gwA } = setup();
    const t = creds.mint({ kind: 'gateway', account_id: 'acct-a', devbox_id: 'dbx_a', config_id: gwA.id, secret_id: secA });
    const a = admitAgent(ctx, 'agent-gateway', request('10.0.0.1', ['x-api-key', t]));
    expect(a.ok).toBe(true);
  });

  it.each([
    ["a token of account B bound to account A's devbox", (s: ReturnType<typeof setup>) => s.creds.mint({ kind: 'gateway', account_id: 'acct-b', devbox_id: 'dbx_a', config_id: s.gwB.id, secret_id: s.secB }), 401],
    ["account A's token naming account B's secret", (s: ReturnType<typeof setup>) => s.creds.mint({ kind: 'gateway', account_id: 'acct-a', devbox_id: 'dbx_a', config_id: s.gwA.id, secret_id: s.secB }), 401],
    ["account A's token naming account B's config", (s: ReturnType<typeof setup>) => s.creds.mint({ kind: 'gateway', account_id: 'acct-a', devbox_id: 'dbx_a', config_id: s.gwB.id, secret_id: s.secA }), 401],
    ['an MCP token at the agent gateway', (s: ReturnType<typeof setup>) => s.creds.mint({ kind: 'mcp', account_id: 'acct-a', devbox_id: 'dbx_a', config_id: s.gwA.id, secret_id: s.secA }), 401],
    [
      'a token whose config was deleted',
      (s: ReturnType<typeof setup>) => {
        const t = s.creds.mint({ kind: 'gateway', account_id: 'acct-a', devbox_id: 'dbx_a', config_id: s.gwA.id, secret_id: s.secA });
        s.creds.deleteConfig(s.gwA.id);
        return t;
      },
      401,
    ],
  ])('refuses %s', (_what, make, status) => {
    const s = setup();
    const a = admitAgent(s.ctx, 'agent-gateway', request('10.0.0.1', ['authorization', `Bearer ${make(s)}`]));
    expect(a.ok).toBe(false);
    if (!a.ok) expect(a.status).toBe(status);
  });

  it('refuses with 403 when the policy has the toggle off, and admits the moment it is on', () => {
    const s = setup();
    const t = s.creds.mint({ kind: 'gateway', account_id: 'acct-a', devbox_id: 'dbx_off', config_id: s.gwA.id, secret_id: s.secA });
    const first = admitAgent(s.ctx, 'agent-gateway', request('10.0.0.2', ['x-api-key', t]));
    expect(first.ok === false && first.status === 403 && first.reason === 'gateway_disabled').toBe(true);
    s.source.putPolicy({ id: 'npol_off', egress: { allow_agent_gateway: true } });
    expect(admitAgent(s.ctx, 'agent-gateway', request('10.0.0.2', ['x-api-key', t])).ok).toBe(true);
  });
});

describe('what a refused request costs', () => {
  function counting() {
    const s = setup();
    let lookups = 0;
    const inner = s.ctx.credentials!;
    const ctx = {
      ...s.ctx,
      credentials: {
        ...inner,
        agentToken: (h: string) => {
          lookups++;
          return inner.agentToken(h);
        },
        gatewayConfig: (id: string) => inner.gatewayConfig(id),
        mcpConfig: (id: string) => inner.mcpConfig(id),
        secretValue: (a: string, id: string) => inner.secretValue(a, id),
      },
    } as AgentContext;
    return { ctx, lookups: () => lookups };
  }
  const manyHeaders = Array.from({ length: 1000 }, (_, i) => [`x-h${i}`, `egw_gt_${'a'.repeat(40)}${i}`]).flat();

  it('an address that is no running devbox: no token is looked up', () => {
    const c = counting();
    const a = admitAgent(c.ctx, 'agent-gateway', request('10.9.9.9', ['authorization', 'Bearer x'.repeat(3), ...manyHeaders]));
    expect(a.ok).toBe(false);
    expect(c.lookups()).toBe(0);
  });

  it('a devbox sending a thousand token-shaped headers: a handful of lookups, not one per header', () => {
    const c = counting();
    const a = admitAgent(c.ctx, 'agent-gateway', request('10.0.0.1', ['authorization', 'Bearer nope-nope-nope-nope', 'x-api-key', 'nope-nope-nope-nope', ...manyHeaders]));
    expect(a.ok).toBe(false);
    expect(c.lookups()).toBeLessThanOrEqual(6);
  });
});

describe('headers sent upstream', () => {
  function admitted(custom: AgentGatewayConfig['custom_headers'], mech: AgentGatewayConfig['auth_mechanism'] = { type: 'header', key: 'x-api-key' }) {
    const s = setup();
    const cfg = s.creds.putGatewayConfig({ account_id: 'acct-a', name: 'h', endpoint: 'https://api.example.test', auth_mechanism: mech, custom_headers: custom });
    const t = s.creds.mint({ kind: 'gateway', account_id: 'acct-a', devbox_id: 'dbx_a', config_id: cfg.id, secret_id: s.secA });
    const a = admitAgent<AgentGatewayConfig>(s.ctx, 'agent-gateway', request('10.0.0.1', ['x-api-key', t]));
    if (!a.ok) throw new Error('not admitted');
    const up = new AgentUpstream(s.ctx, 'agent-gateway');
    return { a: a as Admitted<AgentGatewayConfig>, up, s, ep: parseEndpoint(cfg.endpoint)! };
  }

  it.each([
    ['CR/LF in a literal value', [{ name: 'X-Note', value: 'a\r\nAuthorization: Bearer stolen' }]],
    ['a NUL in a value', [{ name: 'X-Note', value: 'a\u0000b' }]],
    ['a second Authorization', [{ name: 'Authorization', value: 'Bearer other' }]],
    ["the mechanism's own header", [{ name: 'X-API-Key', value: 'other' }]],
    ['Host', [{ name: 'Host', value: 'evil.example' }]],
    ['Content-Length', [{ name: 'Content-Length', value: '0' }]],
    ['an invalid name', [{ name: 'X Bad:', value: 'v' }]],
  ])('a custom header with %s is refused (the request is answered 502, nothing sent)', (_what, custom) => {
    const { a, up, s, ep } = admitted(custom);
    expect(typeof up.ownHeaders(a, ep, s.creds)).toBe('string');
  });

  it('the credential comes last and the custom headers carry their values', () => {
    const { a, up, s, ep } = admitted([{ name: 'X-Org', value: 'org-1' }]);
    expect(up.ownHeaders(a, ep, s.creds)).toEqual(['Host', 'api.example.test', 'X-Org', 'org-1', 'x-api-key', 'sk-A']);
  });

  it('client headers lose every credential, the token wherever it is, and hop-by-hop headers', () => {
    const { a, up } = admitted([{ name: 'X-Org', value: 'org-1' }]);
    const raw = ['Authorization', 'Bearer mine', 'x-api-key', a.tokenText, 'Cookie', 'c=1', 'X-Org', 'devbox-org', 'X-Trace', `t ${a.tokenText}`, 'Connection', 'keep-alive, X-Hop', 'X-Hop', '1', 'Accept', 'application/json'];
    expect(up.forwardHeaders(raw, a)).toEqual(['Accept', 'application/json']);
  });

  it('paths that climb out of the endpoint are recognised, raw or percent-encoded', () => {
    for (const p of ['/../admin', '/v1/%2e%2e/admin', '/v1/%2E./x', '/./x', '/a\\..\\b']) expect(hasDotSegment(p), p).toBe(true);
    for (const p of ['/v1/messages', '/v1/a..b', '/v1/x?y=../z']) expect(hasDotSegment(p), p).toBe(false);
  });
});
