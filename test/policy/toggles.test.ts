import { describe, expect, it } from 'vitest';
import { rig } from '../support/policy-rig.js';

const toggles = {
  agentGateway: ['agent-gateway.runloop.ai'],
  mcpGateway: ['MCP.runloop.ai.', '*.mcp-hub.runloop.ai'],
  mirrors: ['mirrors.runloop.ai', '93.184.216.34', 'not a host', '*.com'],
};

describe('toggles resolve against the configured service hosts', () => {
  it('each toggle admits its hosts, with its own reason, and nothing when off', () => {
    const on = rig({ allow_agent_gateway: true, allow_mcp_gateway: true, allow_runloop_mirrors: true }, { toggles });
    const off = rig({ allowed_hostnames: ['example.com'] }, { toggles });
    const cases: Array<[string, string, string]> = [
      ['agent-gateway.runloop.ai', 'agent_gateway', 'agent-gateway.runloop.ai'],
      ['mcp.runloop.ai', 'mcp_gateway', 'mcp.runloop.ai'],
      ['eu.mcp-hub.runloop.ai', 'mcp_gateway', '*.mcp-hub.runloop.ai'],
      ['mirrors.runloop.ai', 'mirrors', 'mirrors.runloop.ai'],
      ['93.184.216.34', 'mirrors', '93.184.216.34'],
    ];
    for (const [host, reason, matched] of cases) {
      expect(on.engine.decide(on.who, host, 443), host).toMatchObject({ allow: true, reason, matched });
      expect(off.engine.decide(off.who, host, 443).allow, host).toBe(false);
    }
    expect(on.engine.decide(on.who, 'mcp-hub.runloop.ai', 443).allow).toBe(false); // apex of a wildcard toggle
    expect(on.engine.decide(on.who, 'example.com', 443).allow).toBe(false); // `*.com` toggle host ignored
    expect(on.engine.compiledFor('npol_test')!.rejected.map((r) => r.entry)).toEqual(['not a host', '*.com']);
  });

  it('only the toggle that is on admits', () => {
    const r = rig({ allow_mcp_gateway: true }, { toggles });
    expect(r.engine.decide(r.who, 'mcp.runloop.ai', 443).allow).toBe(true);
    expect(r.engine.decide(r.who, 'agent-gateway.runloop.ai', 443).allow).toBe(false);
    expect(r.engine.decide(r.who, 'mirrors.runloop.ai', 443).allow).toBe(false);
  });

  it('an allowlist entry wins over a toggle for the reason reported', () => {
    const r = rig({ allowed_hostnames: ['mirrors.runloop.ai'], allow_runloop_mirrors: true }, { toggles });
    expect(r.engine.decide(r.who, 'mirrors.runloop.ai', 443).reason).toBe('hostname');
  });

  it('allow_all admits everything (and implies devbox_to_devbox)', () => {
    const r = rig({ allow_all: true }, { toggles });
    expect(r.engine.decide(r.who, 'anything.example', 443)).toMatchObject({ allow: true, reason: 'allow_all', matched: null });
    r.source.putDevbox({ id: 'dbx_peer', account_id: 'acct-a', addresses: ['10.9.0.9'] });
    expect(r.engine.decide(r.who, '10.9.0.9', 22)).toMatchObject({ allow: true, reason: 'devbox_to_devbox' });
  });
});

describe('devbox_to_devbox: same account only', () => {
  const r = rig({ allow_devbox_to_devbox: true });
  r.source.putDevbox({ id: 'dbx_peer', account_id: 'acct-a', tunnel_key: 'peerkey', addresses: ['10.9.0.3'] });
  r.source.putDevbox({ id: 'dbx_other', account_id: 'acct-b', tunnel_key: 'otherkey', addresses: ['10.9.0.4'] });
  const d = (h: string) => r.engine.decide(r.who, h, 443);

  it('admits the account’s devbox addresses and tunnel hostnames', () => {
    expect(d('10.9.0.3')).toMatchObject({ allow: true, reason: 'devbox_to_devbox', matched: '10.9.0.3' });
    expect(d('443-peerkey.tunnel.runloop.ai')).toMatchObject({ allow: true, reason: 'devbox_to_devbox' });
    expect(d('443-PEERKEY.tunnel.runloop.ai.')).toMatchObject({ allow: true, reason: 'devbox_to_devbox' });
  });

  it('refuses another account’s devboxes, its own address and malformed tunnel names', () => {
    expect(d('10.9.0.4')).toMatchObject({ allow: false, reason: 'private_address' });
    expect(d('443-otherkey.tunnel.runloop.ai')).toMatchObject({ allow: false, reason: 'not_allowlisted' });
    expect(d('10.9.0.2')).toMatchObject({ allow: false, reason: 'private_address' });
    expect(d('peerkey.tunnel.runloop.ai').allow).toBe(false);
    expect(d('x.443-peerkey.tunnel.runloop.ai').allow).toBe(false);
  });
});

describe('identity and policy problems', () => {
  it('unknown client and missing policy are denials with their own reasons', () => {
    const r = rig({ allow_all: true });
    expect(r.engine.decide({ devboxId: null, via: 'none', source: '10.0.0.99' }, 'example.com', 443)).toMatchObject({ allow: false, reason: 'unknown_client' });
    expect(r.engine.decide({ devboxId: 'dbx_nope', via: 'address', source: '10.0.0.99' }, 'example.com', 443).reason).toBe('unknown_client');
    expect(r.engine.decideForPolicy('npol_nope', 'example.com', 443)).toMatchObject({ allow: false, reason: 'policy_missing', policyId: 'npol_nope' });
  });

  it('a devbox without a policy gets the default: deny everything', () => {
    const r = rig({});
    r.source.putDevbox({ id: 'dbx_test', network_policy_id: null });
    expect(r.engine.decide(r.who, 'github.com', 443)).toMatchObject({ allow: false, reason: 'not_allowlisted', policyId: null });
    expect(r.engine.decide(r.who, '8.8.8.8', 443)).toMatchObject({ allow: false, reason: 'ip_literal' });
  });

  it('identifies devboxes by source address, IPv4-mapped too', () => {
    const r = rig({});
    expect(r.engine.identifyByAddress('10.9.0.2')).toMatchObject({ devboxId: 'dbx_test', via: 'address' });
    expect(r.engine.identifyByAddress('::ffff:10.9.0.2')).toMatchObject({ devboxId: 'dbx_test', source: '10.9.0.2' });
    expect(r.engine.identifyByAddress('10.9.0.250')).toMatchObject({ devboxId: null, via: 'none' });
  });
});
