/**
 * The official Anthropic and OpenAI SDKs through the agent gateway, with the devbox token as
 * their API key, against local HTTPS fakes of both APIs (test CA via --upstream-ca-file): the
 * real credential reaches the fake, the devbox token never does, streamed answers reach the
 * client event by event (the first before the upstream has finished), and a secret's new
 * value is used on the next request without a new token.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AgentRig, startAgentRig } from '../support/agent-rig.js';
import { type FakeLlm, startFakeLlm } from '../support/fake-llm-upstream.js';
import { waitFor } from '../support/wait.js';

let rig: AgentRig;
let fake: FakeLlm;
let devbox: string;

beforeAll(async () => {
  rig = await startAgentRig();
  fake = await startFakeLlm(rig.ca);
  const pol = await rig.policy({ allow_agent_gateway: true });
  devbox = await rig.devbox(pol, ['127.0.0.1']);
}, 60_000);

afterAll(async () => {
  await fake?.close();
  await rig?.close();
});

/** No header and no body the fake received carries the devbox token. */
function tokenNeverArrived(token: string): void {
  for (const r of fake.received) {
    for (const v of r.rawHeaders) expect(v.includes(token), `header value carries the devbox token on ${r.url}`).toBe(false);
    expect(r.body.includes(token)).toBe(false);
  }
}

describe('Anthropic SDK', () => {
  it('messages.create arrives with the real x-api-key and answers through the gateway', async () => {
    const t = await rig.mintGatewayToken({ devboxId: devbox, endpoint: fake.url, auth: { type: 'header', key: 'x-api-key' }, secret: 'sk-ant-REAL-1' });
    const client = new Anthropic({ baseURL: t.url, apiKey: t.token, maxRetries: 0 });
    const before = fake.received.length;
    const msg = await client.messages.create({ model: 'claude-test', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] });
    expect(msg.content[0]).toMatchObject({ type: 'text', text: 'Hello from the fake' });
    const got = fake.received.slice(before);
    expect(got).toHaveLength(1);
    expect(got[0]!.url).toBe('/v1/messages');
    expect(got[0]!.headers['x-api-key']).toBe('sk-ant-REAL-1');
    expect(got[0]!.headers.authorization).toBeUndefined();
    expect(got[0]!.headers['anthropic-version']).toBeDefined();
    expect(JSON.parse(got[0]!.body).messages[0].content).toBe('hi');
    tokenNeverArrived(t.token);
  });

  it('a streamed answer reaches the client event by event: the first before the upstream finishes', async () => {
    const t = await rig.mintGatewayToken({ devboxId: devbox, endpoint: fake.url, auth: { type: 'header', key: 'x-api-key' }, secret: 'sk-ant-REAL-2' });
    const client = new Anthropic({ baseURL: t.url, apiKey: t.token, maxRetries: 0 });
    let release!: () => void;
    fake.holdStreams = new Promise<void>((r) => (release = r));
    let released = false;
    let firstTextWhileHeld: boolean | null = null;
    const texts: string[] = [];
    try {
      const stream = await client.messages.create({ model: 'claude-test', max_tokens: 16, stream: true, messages: [{ role: 'user', content: 'hi' }] });
      for await (const ev of stream) {
        if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') {
          texts.push(ev.delta.text);
          if (firstTextWhileHeld === null) {
            firstTextWhileHeld = !released;
            released = true;
            release();
          }
        }
      }
    } finally {
      fake.holdStreams = null;
      release();
    }
    expect(firstTextWhileHeld).toBe(true);
    expect(texts.join('')).toBe('Hello world');
    expect(fake.received.at(-1)!.headers['x-api-key']).toBe('sk-ant-REAL-2');
    tokenNeverArrived(t.token);
  });

  it("a secret's new value is used on the next request, with the same token", async () => {
    const t = await rig.mintGatewayToken({ devboxId: devbox, endpoint: fake.url, auth: { type: 'header', key: 'x-api-key' }, secret: 'sk-ant-OLD' });
    const client = new Anthropic({ baseURL: t.url, apiKey: t.token, maxRetries: 0 });
    await client.messages.create({ model: 'm', max_tokens: 1, messages: [{ role: 'user', content: 'a' }] });
    expect(fake.received.at(-1)!.headers['x-api-key']).toBe('sk-ant-OLD');
    await rig.updateSecret(t.secretName, 'sk-ant-NEW');
    await client.messages.create({ model: 'm', max_tokens: 1, messages: [{ role: 'user', content: 'b' }] });
    expect(fake.received.at(-1)!.headers['x-api-key']).toBe('sk-ant-NEW');
  });
});

describe('OpenAI SDK', () => {
  it('chat.completions.create arrives with the real bearer credential', async () => {
    const t = await rig.mintGatewayToken({
      devboxId: devbox,
      endpoint: fake.url,
      auth: { type: 'bearer' },
      secret: 'sk-openai-REAL',
      customHeaders: [
        { name: 'OpenAI-Organization', value: 'org-fake' },
        { name: 'OpenAI-Project', secretValue: 'proj-secret' },
      ],
    });
    const client = new OpenAI({ baseURL: `${t.url}/v1`, apiKey: t.token, maxRetries: 0 });
    const before = fake.received.length;
    const out = await client.chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }] });
    expect(out.choices[0]!.message.content).toBe('Hello from the fake');
    const got = fake.received.slice(before);
    expect(got).toHaveLength(1);
    expect(got[0]!.url).toBe('/v1/chat/completions');
    expect(got[0]!.headers.authorization).toBe('Bearer sk-openai-REAL');
    expect(got[0]!.headers['openai-organization']).toBe('org-fake');
    expect(got[0]!.headers['openai-project']).toBe('proj-secret');
    tokenNeverArrived(t.token);
  });

  it('a streamed completion reaches the client chunk by chunk: the first before the upstream finishes', async () => {
    const t = await rig.mintGatewayToken({ devboxId: devbox, endpoint: fake.url, auth: { type: 'bearer' }, secret: 'sk-openai-STREAM' });
    const client = new OpenAI({ baseURL: `${t.url}/v1`, apiKey: t.token, maxRetries: 0 });
    let release!: () => void;
    fake.holdStreams = new Promise<void>((r) => (release = r));
    const started = fake.firstEvents;
    let released = false;
    let firstWhileHeld: boolean | null = null;
    const texts: string[] = [];
    try {
      const stream = await client.chat.completions.create({ model: 'gpt-test', stream: true, messages: [{ role: 'user', content: 'hi' }] });
      for await (const chunk of stream) {
        texts.push(chunk.choices[0]?.delta.content ?? '');
        if (firstWhileHeld === null) {
          // The upstream has sent its first event and is now waiting for us.
          await waitFor(() => fake.firstEvents > started, 10_000, 'the fake to send its first event');
          firstWhileHeld = !released;
          released = true;
          release();
        }
      }
    } finally {
      fake.holdStreams = null;
      release();
    }
    expect(firstWhileHeld).toBe(true);
    expect(texts.join('')).toBe('Hello world');
    expect(fake.received.at(-1)!.headers.authorization).toBe('Bearer sk-openai-STREAM');
    tokenNeverArrived(t.token);
  });
});
