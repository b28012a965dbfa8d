/**
 * A hostile or broken MCP upstream cannot get a tools list past the hub's filter by making its
 * answer unreadable to the hub: a successful answer that is neither JSON nor SSE, JSON that does
 * not parse, or an SSE event whose data lines do not join into JSON. The hub answers 502 or
 * drops the event; the refused tool's name never reaches the devbox.
 */
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AgentRig, startAgentRig } from '../support/agent-rig.js';

const LIST = '{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"delete_repo"},{"name":"search_code"}]}}';
const ANSWERS: Record<string, { type: string; body: string }> = {
  '/text': { type: 'text/plain', body: LIST },
  '/broken-json': { type: 'application/json', body: `${LIST}\n{"more":` },
  '/junk-line': { type: 'text/event-stream', body: `id: 1\ndata: ${LIST}\ndata: junk\n\n` },
};

let rig: AgentRig;
let upstream: https.Server;
let box: string;

beforeAll(async () => {
  rig = await startAgentRig();
  upstream = https.createServer({ key: rig.ca.key, cert: rig.ca.cert }, (req, res) => {
    req.resume();
    req.on('end', () => {
      const a = ANSWERS[req.url ?? ''] ?? ANSWERS['/text']!;
      res.writeHead(200, { 'content-type': a.type });
      res.end(a.body);
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  box = await rig.devbox(await rig.policy({ allow_mcp_gateway: true }), ['127.0.0.1']);
}, 60_000);

afterAll(async () => {
  upstream?.closeAllConnections();
  await new Promise<void>((r) => (upstream ? upstream.close(() => r()) : r()));
  await rig?.close();
});

async function listThrough(path: string): Promise<{ status: number; text: string }> {
  const port = (upstream.address() as AddressInfo).port;
  const t = await rig.mintMcpToken({ devboxId: box, name: 'github-ro', endpoint: `https://127.0.0.1:${port}${path}`, secret: 's', allowedTools: ['github.search_*'] });
  const r = await fetch(`${t.url}/mcp`, { method: 'POST', headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' });
  return { status: r.status, text: await r.text() };
}

describe('unreadable upstream answers', () => {
  it.each([
    ['a 200 that is neither JSON nor SSE', '/text'],
    ['JSON that does not parse', '/broken-json'],
  ])('%s: 502, nothing of it relayed', async (_what, path) => {
    const r = await listThrough(path);
    expect(r.status).toBe(502);
    expect(r.text).not.toContain('delete_repo');
  });

  it('an SSE event whose data does not join into JSON: dropped, its id kept', async () => {
    const r = await listThrough('/junk-line');
    expect(r.status).toBe(200);
    expect(r.text).not.toContain('delete_repo');
    expect(r.text).toContain('id: 1');
  });
});
