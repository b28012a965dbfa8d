/**
 * The upstream's TLS is verified, against the system CAs plus --upstream-ca-file, for the
 * endpoint's name: an upstream whose certificate another CA signed (a man in the middle), or
 * whose certificate does not name the endpoint's host, gets no request and no credential; the
 * devbox gets a 502 in JSON.
 */
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AgentRig, startAgentRig } from '../support/agent-rig.js';
import { type DnsUpstream, startDnsUpstream } from '../support/dns-upstream.js';
import { type TestCa, makeTestCa } from '../support/test-ca.js';

let rig: AgentRig;
let dns: DnsUpstream;
let otherCa: TestCa;
let mitm: https.Server;
let plain: https.Server;
let box: string;
let reached = 0;

async function serve(ca: TestCa): Promise<https.Server> {
  const s = https.createServer({ key: ca.key, cert: ca.cert }, (req, res) => {
    reached++;
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return s;
}
const port = (s: https.Server) => (s.address() as AddressInfo).port;

beforeAll(async () => {
  dns = await startDnsUpstream({ records: { 'api.elsewhere.example': [{ type: 'A', data: '127.0.0.1' }] } });
  rig = await startAgentRig({ upstreamDnsPort: dns.port });
  otherCa = makeTestCa();
  mitm = await serve(otherCa);
  plain = await serve(rig.ca);
  box = await rig.devbox(await rig.policy({ allow_agent_gateway: true }), ['127.0.0.1']);
}, 60_000);

afterAll(async () => {
  for (const s of [mitm, plain]) {
    s?.closeAllConnections();
    await new Promise<void>((r) => (s ? s.close(() => r()) : r()));
  }
  otherCa?.remove();
  await rig?.close();
  await dns?.close();
});

describe('upstream TLS', () => {
  it.each([
    ['a certificate from a CA the gateway does not trust', () => `https://127.0.0.1:${port(mitm)}`],
    ["a trusted certificate that does not name the endpoint's host", () => `https://api.elsewhere.example:${port(plain)}`],
  ])('%s: 502, nothing sent', async (_what, endpoint) => {
    const t = await rig.mintGatewayToken({ devboxId: box, endpoint: endpoint(), auth: { type: 'header', key: 'x-api-key' }, secret: 'sk-REAL' });
    const before = reached;
    const err = await new Anthropic({ baseURL: t.url, apiKey: t.token, maxRetries: 0 }).messages.create({ model: 'm', max_tokens: 1, messages: [{ role: 'user', content: 'x' }] }).then(
      () => null,
      (e: { status?: number; error?: { error?: { type?: string } } }) => e,
    );
    expect(err?.status).toBe(502);
    expect(err?.error?.error?.type).toBe('upstream_failed');
    expect(reached).toBe(before);
  });

  it('the trusted certificate for its own name works (control)', async () => {
    const t = await rig.mintGatewayToken({ devboxId: box, endpoint: `https://127.0.0.1:${port(plain)}`, auth: { type: 'bearer' }, secret: 'sk-REAL' });
    const before = reached;
    const r = await fetch(`${t.url}/v1/x`, { headers: { authorization: `Bearer ${t.token}` } });
    expect(r.status).toBe(200);
    expect(reached).toBe(before + 1);
  });
});
