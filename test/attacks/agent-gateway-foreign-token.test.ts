/**
 * A gateway token is the devbox's only from that running devbox's own address: the same
 * token from another devbox's address, from an unregistered address, after the devbox shut
 * down, or after its secret was deleted is a 401 in JSON, and nothing reaches the upstream;
 * another account can neither mint for the devbox nor use its secret (the door's own checks of
 * account, config and secret are pinned in test/agent/agent-admission.test.ts). Also: the door's toggle is decided per
 * request (403 while off, served the moment it is on, an open stream cut when it goes off).
 */
import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AgentRig, TOKEN_B, startAgentRig } from '../support/agent-rig.js';
import { type FakeLlm, startFakeLlm } from '../support/fake-llm-upstream.js';
import { curl } from '../support/proxy.js';
import { waitFor } from '../support/wait.js';

let rig: AgentRig;
let fake: FakeLlm;
let pol: string;
let boxA: string;

beforeAll(async () => {
  rig = await startAgentRig();
  fake = await startFakeLlm(rig.ca);
  pol = await rig.policy({ allow_agent_gateway: true });
  boxA = await rig.devbox(pol, ['127.0.0.1']);
  await rig.devbox(pol, ['127.0.0.21']);
}, 60_000);

afterAll(async () => {
  await fake?.close();
  await rig?.close();
});

const anthropic = (token: string) => new Anthropic({ baseURL: rig.agentUrl, apiKey: token, maxRetries: 0 });
const ask = (c: Anthropic) => c.messages.create({ model: 'm', max_tokens: 1, messages: [{ role: 'user', content: 'x' }] });
const mint = (secret = 'sk-REAL') => rig.mintGatewayToken({ devboxId: boxA, endpoint: fake.url, auth: { type: 'header', key: 'x-api-key' }, secret });

/** Sends the token as the Anthropic SDK does, from `from`; returns status and parsed body. */
async function fromAddress(token: string, from: string) {
  const r = await curl(['--interface', from, '-H', `x-api-key: ${token}`, '-H', 'content-type: application/json', '--data', '{"model":"m","max_tokens":1,"messages":[]}', `${rig.agentUrl}/v1/messages`]);
  return { status: r.status, body: JSON.parse(r.body.toString('utf8')) };
}

describe('a token from anywhere but its devbox', () => {
  it("works from its devbox's address (control)", async () => {
    const t = await mint();
    const before = fake.received.length;
    expect((await fromAddress(t.token, '127.0.0.1')).status).toBe(200);
    expect(fake.received.length).toBe(before + 1);
  });

  it.each([
    ['another devbox of the same account', '127.0.0.21'],
    ['an address no devbox has', '127.0.0.22'],
  ])('is refused from %s: 401, nothing upstream', async (_what, from) => {
    const t = await mint();
    const before = fake.received.length;
    const r = await fromAddress(t.token, from);
    expect(r.status).toBe(401);
    expect(r.body.error.type).toBe('bad_token');
    expect(fake.received.length).toBe(before);
  });

  it('is refused once its devbox shut down', async () => {
    const box = await rig.devbox(pol, ['127.0.0.23']);
    const t = await rig.mintGatewayToken({ devboxId: box, endpoint: fake.url, auth: { type: 'bearer' }, secret: 's' });
    expect((await fromAddress(t.token, '127.0.0.23')).status).toBe(200);
    await rig.tg.api.shutdown(box);
    await waitFor(async () => (await fromAddress(t.token, '127.0.0.23')).status === 401, 10_000, 'the token to stop working after shutdown');
  });

  it('an unknown token, or none, is 401 through the SDK', async () => {
    await expect(ask(anthropic('not-a-token'))).rejects.toMatchObject({ status: 401 });
    const r = await curl(['-H', 'content-type: application/json', '--data', '{}', `${rig.agentUrl}/v1/messages`]);
    expect(r.status).toBe(401);
  });
});

describe('another account', () => {
  it("account B cannot mint a token for account A's devbox, nor name A's secret", async () => {
    await expect(rig.mintGatewayToken({ as: TOKEN_B, devboxId: boxA, endpoint: fake.url, auth: { type: 'header', key: 'x-api-key' }, secret: 'sk-B' })).rejects.toThrow(/: 404 /);
    const a = await mint('sk-A-SECRET');
    const boxB = await rig.devbox(await rig.policy({ allow_agent_gateway: true }, TOKEN_B), ['127.0.0.25'], TOKEN_B);
    const r = await rig.tg.api.as(TOKEN_B).call('POST', `/v1/devboxes/${boxB}/create_gateway_token`, { gateway: 'anthropic', secret: a.secretId });
    expect(r.status).toBe(404);
  });

  it("account A's token is refused from account B's devbox address", async () => {
    const t = await mint();
    const boxB = await rig.devbox(await rig.policy({ allow_agent_gateway: true }, TOKEN_B), ['127.0.0.26'], TOKEN_B);
    expect(boxB).toBeTruthy();
    const before = fake.received.length;
    expect((await fromAddress(t.token, '127.0.0.26')).status).toBe(401);
    expect(fake.received.length).toBe(before);
  });

  it('a deleted secret ends its tokens', async () => {
    const t = await mint('sk-GONE');
    await ask(anthropic(t.token));
    await rig.deleteSecret(t.secretName);
    await expect(ask(anthropic(t.token))).rejects.toMatchObject({ status: 401 });
  });
});

describe('allow_agent_gateway, per request', () => {
  it('403 while off, served as soon as it is on, and an open stream cut when it goes off', async () => {
    const p = await rig.policy({ allow_agent_gateway: false });
    const box = await rig.devbox(p, ['127.0.0.24']);
    const t = await rig.mintGatewayToken({ devboxId: box, endpoint: fake.url, auth: { type: 'header', key: 'x-api-key' }, secret: 'sk-T' });
    const before = fake.received.length;
    const off = await fromAddress(t.token, '127.0.0.24');
    expect(off.status).toBe(403);
    expect(off.body.error.type).toBe('gateway_disabled');
    expect(fake.received.length).toBe(before);
    await rig.updatePolicy(p, { allow_agent_gateway: true });
    await waitFor(async () => (await fromAddress(t.token, '127.0.0.24')).status === 200, 10_000, 'the toggle to apply');

    // A streamed answer held open upstream is cut when the toggle goes off again.
    let release!: () => void;
    fake.holdStreams = new Promise<void>((r) => (release = r));
    try {
      const started = fake.firstEvents;
      const stream = curl(['--interface', '127.0.0.24', '-N', '-H', `x-api-key: ${t.token}`, '-H', 'content-type: application/json', '--data', '{"model":"m","max_tokens":1,"stream":true,"messages":[]}', `${rig.agentUrl}/v1/messages`]);
      await waitFor(() => fake.firstEvents > started, 10_000, 'the stream to start');
      await rig.updatePolicy(p, { allow_agent_gateway: false });
      const r = await stream;
      expect(r.exit).toBe(18); // cut mid-answer: "transfer closed with outstanding read data" (not 28, its own time-out)
      expect(r.body.toString()).toContain('message_start');
      expect(r.body.toString()).not.toContain('message_stop');
    } finally {
      fake.holdStreams = null;
      release();
    }
  });
});
