/**
 * The upstream's credential is the gateway's alone: a devbox that sends its own key beside its
 * token (x-api-key, a second Authorization, the mechanism's header, a cookie) has all of them
 * stripped, and whatever header carries the token is never forwarded. A config whose custom
 * headers carry CR/LF or try to set Authorization (or the mechanism's header) is refused by the
 * API; a secret value with CR/LF (which the API cannot judge) is answered 502 by the door and
 * nothing is sent half-made (the door's own header checks: test/agent/agent-admission.test.ts).
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AgentRig, startAgentRig } from '../support/agent-rig.js';
import { type FakeLlm, startFakeLlm } from '../support/fake-llm-upstream.js';
import { curl } from '../support/proxy.js';

let rig: AgentRig;
let fake: FakeLlm;
let box: string;

beforeAll(async () => {
  rig = await startAgentRig();
  fake = await startFakeLlm(rig.ca);
  box = await rig.devbox(await rig.policy({ allow_agent_gateway: true }), ['127.0.0.1']);
}, 60_000);

afterAll(async () => {
  await fake?.close();
  await rig?.close();
});

/** Every value of a header the fake received (raw, so duplicates show). */
function values(name: string): string[] {
  const raw = fake.received.at(-1)!.rawHeaders;
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) out.push(raw[i + 1]!);
  return out;
}

describe('a devbox trying to set the upstream credential itself', () => {
  it('Anthropic SDK with the token as authToken and its own x-api-key: only the real x-api-key arrives', async () => {
    const t = await rig.mintGatewayToken({ devboxId: box, endpoint: fake.url, auth: { type: 'header', key: 'x-api-key' }, secret: 'sk-ant-REAL' });
    const client = new Anthropic({ baseURL: t.url, authToken: t.token, maxRetries: 0, defaultHeaders: { 'x-api-key': 'sk-ant-DEVBOX-OWN' } });
    await client.messages.create({ model: 'm', max_tokens: 1, messages: [{ role: 'user', content: 'x' }] });
    expect(values('x-api-key')).toEqual(['sk-ant-REAL']);
    expect(values('authorization')).toEqual([]);
  });

  it('OpenAI SDK with an extra x-api-key and Cookie: only the real bearer arrives', async () => {
    const t = await rig.mintGatewayToken({ devboxId: box, endpoint: fake.url, auth: { type: 'bearer' }, secret: 'sk-oai-REAL' });
    const client = new OpenAI({ baseURL: `${t.url}/v1`, apiKey: t.token, maxRetries: 0, defaultHeaders: { 'x-api-key': 'sk-DEVBOX-OWN', cookie: 'session=devbox' } });
    await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }] });
    expect(values('authorization')).toEqual(['Bearer sk-oai-REAL']);
    expect(values('x-api-key')).toEqual([]);
    expect(values('cookie')).toEqual([]);
  });

  it('a second Authorization header, the mechanism header twice, and the token in another header: all stripped', async () => {
    const t = await rig.mintGatewayToken({ devboxId: box, endpoint: fake.url, auth: { type: 'header', key: 'X-Upstream-Key' }, secret: 'REAL-KEY' });
    const r = await curl(['-H', `Authorization: Bearer ${t.token}`, '-H', 'Authorization: Bearer sk-DEVBOX-OWN', '-H', 'X-Upstream-Key: DEVBOX-1', '-H', 'X-Upstream-Key: DEVBOX-2', '-H', `X-Trace: ${t.token}`, `${t.url}/echo`]);
    expect(r.status).toBe(200);
    expect(values('x-upstream-key')).toEqual(['REAL-KEY']);
    expect(values('authorization')).toEqual([]);
    expect(values('x-trace')).toEqual([]);
  });

  it("the token may come in the mechanism's own header (and is stripped there too)", async () => {
    const t = await rig.mintGatewayToken({ devboxId: box, endpoint: fake.url, auth: { type: 'header', key: 'X-Goog-Api-Key' }, secret: 'REAL-GOOG' });
    const r = await curl(['-H', `X-Goog-Api-Key: ${t.token}`, `${t.url}/echo`]);
    expect(r.status).toBe(200);
    expect(values('x-goog-api-key')).toEqual(['REAL-GOOG']);
  });

  it('basic: the secret user:pass goes as Basic base64', async () => {
    const t = await rig.mintGatewayToken({ devboxId: box, endpoint: fake.url, auth: { type: 'basic' }, secret: 'user:pa:ss' });
    const r = await curl(['-H', `x-api-key: ${t.token}`, '-u', 'devbox:own', `${t.url}/echo`]);
    expect(r.status).toBe(200);
    expect(values('authorization')).toEqual([`Basic ${Buffer.from('user:pa:ss').toString('base64')}`]);
  });
});

describe('hostile custom headers in a config', () => {
  it.each([
    ['CR/LF in a literal value', [{ name: 'X-Note', value: 'a\r\nAuthorization: Bearer stolen' }]],
    ['a second Authorization', [{ name: 'Authorization', value: 'Bearer other' }]],
    ["the mechanism's own header", [{ name: 'x-api-key', value: 'other' }]],
    ['Host', [{ name: 'Host', value: 'evil.example' }]],
    ['an invalid header name', [{ name: 'X Bad:', value: 'v' }]],
  ])('%s: the config is refused by the API (400)', async (_what, customHeaders) => {
    await expect(rig.mintGatewayToken({ devboxId: box, endpoint: fake.url, auth: { type: 'header', key: 'x-api-key' }, secret: 'sk-REAL', customHeaders })).rejects.toThrow(/gateway-configs: 400 /);
  });

  it('CR/LF inside a secret a custom header uses (the API cannot see it in the config): 502, nothing sent', async () => {
    const t = await rig.mintGatewayToken({ devboxId: box, endpoint: fake.url, auth: { type: 'header', key: 'x-api-key' }, secret: 'sk-REAL', customHeaders: [{ name: 'X-Note', secretValue: 'a\r\nX-Evil: 1' }] });
    const before = fake.received.length;
    const r = await curl(['-H', `x-api-key: ${t.token}`, `${t.url}/echo`]);
    expect(r.status).toBe(502);
    expect(JSON.parse(r.body.toString()).error.type).toBe('bad_config');
    expect(fake.received.length).toBe(before);
  });

  it('CR/LF inside the credential secret itself: 502, nothing sent', async () => {
    const t = await rig.mintGatewayToken({ devboxId: box, endpoint: fake.url, auth: { type: 'bearer' }, secret: 'sk-REAL\r\nX-Evil: 1' });
    const before = fake.received.length;
    const r = await curl(['-H', `x-api-key: ${t.token}`, `${t.url}/echo`]);
    expect(r.status).toBe(502);
    expect(fake.received.length).toBe(before);
  });
});
