/**
 * Slow-loris on both credential listeners: a client that trickles a request head (or sends
 * nothing) is answered 408 and closed once --header-timeout-ms runs out, as on every other
 * door, while a devbox keeps being served on the same listener. Client sockets are taken at
 * accept by the per-source limiter like the other doors'.
 */
import net from 'node:net';
import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AgentRig, startAgentRig } from '../support/agent-rig.js';
import { type FakeLlm, startFakeLlm } from '../support/fake-llm-upstream.js';
import { waitFor } from '../support/wait.js';

const HEADER_TIMEOUT_MS = 400;
let rig: AgentRig;
let fake: FakeLlm;
let token: string;

beforeAll(async () => {
  rig = await startAgentRig({ flags: { 'header-timeout-ms': String(HEADER_TIMEOUT_MS) } });
  fake = await startFakeLlm(rig.ca);
  const box = await rig.devbox(await rig.policy({ allow_agent_gateway: true, allow_mcp_gateway: true }), ['127.0.0.1']);
  token = (await rig.mintGatewayToken({ devboxId: box, endpoint: fake.url, auth: { type: 'header', key: 'x-api-key' }, secret: 'sk-REAL' })).token;
}, 60_000);

afterAll(async () => {
  await fake?.close();
  await rig?.close();
});

interface Stall {
  closed: boolean;
  answer: string;
  stop(): void;
}

/** From 127.0.0.31: a request head one header line at a time, a line every 50 ms, forever (or nothing at all). */
function stall(port: number, trickle: boolean): Stall {
  const s = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.31' });
  const st: Stall = { closed: false, answer: '', stop: () => s.destroy() };
  let timer: NodeJS.Timeout | null = null;
  s.on('data', (d) => (st.answer += d.toString('latin1')));
  s.on('error', () => {});
  s.on('close', () => {
    st.closed = true;
    if (timer) clearInterval(timer);
  });
  s.on('connect', () => {
    if (!trickle) return;
    s.write('POST /v1/messages HTTP/1.1\r\nHost: gw\r\n');
    let n = 0;
    timer = setInterval(() => s.write(`X-Slow-${n++}: a\r\n`), 50);
  });
  return st;
}

describe.each(['agent-gateway', 'mcp-hub'] as const)('%s', (door) => {
  it.each([
    ['a trickled head', true],
    ['a silent connection', false],
  ])('%s is closed after --header-timeout-ms (a started head with a 408), while a devbox is served', async (_what, trickle) => {
    const attackers = Array.from({ length: 4 }, () => stall(rig.tg.addr(door).port, trickle));
    try {
      // A devbox is served meanwhile: the stalled sockets cost the gateway nothing.
      const client = new Anthropic({ baseURL: rig.agentUrl, apiKey: token, maxRetries: 0 });
      await client.messages.create({ model: 'm', max_tokens: 1, messages: [{ role: 'user', content: 'x' }] });
      await waitFor(() => attackers.every((a) => a.closed), 10 * HEADER_TIMEOUT_MS + 5000, 'every stalled client to be closed');
      for (const a of attackers) if (trickle) expect(a.answer).toMatch(/^HTTP\/1\.1 408 /);
    } finally {
      for (const a of attackers) a.stop();
    }
  });
});
