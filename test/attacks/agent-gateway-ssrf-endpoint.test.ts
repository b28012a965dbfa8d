/**
 * A config's endpoint is dialled through the gateway's resolver and the private-address
 * guardrail like every destination: an endpoint on a metadata, loopback or private address
 * (given as an IP literal or as a name that resolves there) is refused with a 502 in JSON and
 * recorded against the devbox (`private_address` in /v1/egress/events) unless --allow-private
 * covers it; nothing is dialled.
 */
import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AgentRig, startAgentRig } from '../support/agent-rig.js';
import { type FakeLlm, startFakeLlm } from '../support/fake-llm-upstream.js';
import { type DnsUpstream, startDnsUpstream } from '../support/dns-upstream.js';
import { waitFor } from '../support/wait.js';

let rig: AgentRig;
let open: AgentRig;
let fake: FakeLlm;
let dns: DnsUpstream;
let box: string;

beforeAll(async () => {
  dns = await startDnsUpstream({ records: { 'internal.fake.test': [{ type: 'A', data: '127.0.0.1' }], 'metadata.fake.test': [{ type: 'A', data: '169.254.169.254' }] } });
  // No --allow-private range covers loopback or link-local here.
  rig = await startAgentRig({ upstreamDnsPort: dns.port, flags: { 'allow-private': '10.255.0.0/16', 'events-flush-ms': '50' } });
  fake = await startFakeLlm(rig.ca);
  box = await rig.devbox(await rig.policy({ allow_agent_gateway: true }), ['127.0.0.1']);
}, 60_000);

afterAll(async () => {
  await fake?.close();
  await rig?.close();
  await open?.close();
  await dns?.close();
});

const ask = (baseURL: string, apiKey: string) => new Anthropic({ baseURL, apiKey, maxRetries: 0 }).messages.create({ model: 'm', max_tokens: 1, messages: [{ role: 'user', content: 'x' }] });

describe('endpoints on private addresses', () => {
  it.each([
    ['the cloud metadata address', 'http://169.254.169.254/latest'],
    ['loopback (the fake itself)', () => fake.url],
    ['loopback by IPv6 literal', 'http://[::1]:9/'],
    ['a name that resolves to loopback', () => `https://internal.fake.test:${fake.port}`],
    ['a name that resolves to the metadata address', 'http://metadata.fake.test/'],
  ])('%s is refused (502, private_address), nothing dialled', async (_what, endpoint) => {
    const t = await rig.mintGatewayToken({ devboxId: box, endpoint: typeof endpoint === 'function' ? endpoint() : endpoint, auth: { type: 'header', key: 'x-api-key' }, secret: 'sk-REAL' });
    const before = fake.received.length;
    const err = await ask(t.url, t.token).then(
      () => null,
      (e: unknown) => e as { status?: number; error?: { error?: { type?: string } } },
    );
    expect(err?.status).toBe(502);
    expect(err?.error?.error?.type).toBe('private_address');
    expect(fake.received.length).toBe(before);
  });

  it('the refusal is in the denial record', async () => {
    await waitFor(
      async () => {
        const r = await rig.tg.api.call('GET', `/v1/egress/events?devbox_id=${box}`);
        return r.body.events?.some((e: any) => e.door === 'agent-gateway' && e.reason === 'private_address' && e.host === '169.254.169.254');
      },
      20_000,
      'private_address in /v1/egress/events',
    );
  });

  it('--allow-private covering the range lets the same endpoint through (control)', async () => {
    open = await startAgentRig({ upstreamDnsPort: dns.port, flags: { 'allow-private': '127.0.0.0/8', 'upstream-ca-file': rig.ca.caFile } });
    const b = await open.devbox(await open.policy({ allow_agent_gateway: true }), ['127.0.0.1']);
    const t = await open.mintGatewayToken({ devboxId: b, endpoint: `https://internal.fake.test:${fake.port}`, auth: { type: 'header', key: 'x-api-key' }, secret: 'sk-REAL' });
    const before = fake.received.length;
    await ask(t.url, t.token);
    expect(fake.received.length).toBe(before + 1);
    // TLS was verified against the endpoint's name (the certificate names *.fake.test).
    expect(fake.received.at(-1)!.headers.host).toBe(`internal.fake.test:${fake.port}`);
  });
});
