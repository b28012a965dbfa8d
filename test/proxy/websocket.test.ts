/**
 * Threat: an upgrade as a side door: a WebSocket (or any Upgrade) to a host the policy
 * denies, or a proxy that mangles frames. Allowed upgrades relay both ways intact, through
 * absolute-form upgrade requests and through CONNECT; denied ones get the 403.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import WebSocket, { WebSocketServer } from 'ws';
import { type ProxyEnv, connectTunnel, metric, startProxyEnv, until } from '../support/proxy.js';

let env: ProxyEnv;
let wss: WebSocketServer;
let wsPort: number;
beforeAll(async () => {
  env = await startProxyEnv();
  wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  wsPort = (wss.address() as net.AddressInfo).port;
  wss.on('connection', (ws, req) => {
    ws.send(JSON.stringify({ hello: req.headers.host, proxyAuth: req.headers['proxy-authorization'] ?? null }));
    ws.on('message', (m, binary) => ws.send(m, { binary }));
  });
});
afterAll(async () => {
  for (const c of wss?.clients ?? []) c.terminate();
  await new Promise((r) => wss?.close(r));
  await env?.close();
});

/** An agent that sends absolute-form requests to the proxy (what HTTP-proxy-aware clients do for ws://). */
class AbsoluteFormAgent extends http.Agent {
  constructor(
    private readonly proxyPort: number,
    private readonly localAddress: string,
  ) {
    super({ keepAlive: false });
  }
  override createConnection(): net.Socket {
    return net.connect({ host: '127.0.0.1', port: this.proxyPort, localAddress: this.localAddress });
  }
}
function absoluteForm(agent: AbsoluteFormAgent) {
  const orig = (agent as unknown as { addRequest: (req: http.ClientRequest, o: { host: string; port: number }) => void }).addRequest.bind(agent);
  (agent as unknown as { addRequest: unknown }).addRequest = (req: http.ClientRequest, o: { host: string; port: number }) => {
    req.path = `http://${o.host}:${o.port}${req.path}`;
    orig(req, o);
  };
  return agent;
}

/** An agent whose connections are CONNECT tunnels through the proxy. */
function connectAgent(proxyPort: number, localAddress: string): http.Agent {
  const agent = new http.Agent({ keepAlive: false });
  (agent as unknown as { createConnection: unknown }).createConnection = (o: { host?: string; port?: number }, cb: (err: Error | null, s?: net.Socket) => void) => {
    connectTunnel(proxyPort, `${o.host}:${o.port}`, { localAddress }).then(
      (s) => cb(null, s),
      (e: Error) => cb(e),
    );
    return undefined;
  };
  return agent;
}

async function echoRoundTrip(ws: WebSocket): Promise<{ hello: any; echoed: Buffer[]; sent: Buffer[] }> {
  const sent = [randomBytes(10), randomBytes(70_000), randomBytes(1_000_000)];
  const got: Buffer[] = [];
  let hello: any;
  await new Promise<void>((resolve, reject) => {
    ws.on('error', reject);
    ws.on('message', (m: Buffer, binary) => {
      if (!binary && hello === undefined) {
        hello = JSON.parse(m.toString());
        for (const s of sent) ws.send(s);
        return;
      }
      got.push(m);
      if (got.length === sent.length) resolve();
    });
  });
  ws.close();
  return { hello, echoed: got, sent };
}

describe('WebSocket through the proxy', () => {
  it('absolute-form upgrade (ws://ws.test) relays frames intact both ways', async () => {
    const ws = new WebSocket(`ws://ws.test:${wsPort}/chat`, { agent: absoluteForm(new AbsoluteFormAgent(env.proxyPort, '127.0.0.2')) });
    const { hello, echoed, sent } = await echoRoundTrip(ws);
    expect(hello.hello).toBe(`ws.test:${wsPort}`);
    for (let i = 0; i < sent.length; i++) expect(echoed[i]!.equals(sent[i]!)).toBe(true);
  });

  it('Proxy-Authorization is used for identity and not passed to the WebSocket server', async () => {
    const agent = absoluteForm(new AbsoluteFormAgent(env.proxyPort, '127.0.0.9'));
    const ws = new WebSocket(`ws://ws.test:${wsPort}/`, { agent, headers: { 'Proxy-Authorization': `Basic ${Buffer.from(`${env.a.username}:${env.a.password}`).toString('base64')}` } });
    const { hello } = await echoRoundTrip(ws);
    expect(hello.proxyAuth).toBeNull();
  });

  it('WebSocket inside a CONNECT tunnel works', async () => {
    const ws = new WebSocket(`ws://ws.test:${wsPort}/t`, { agent: connectAgent(env.proxyPort, '127.0.0.2') });
    const { echoed, sent } = await echoRoundTrip(ws);
    expect(echoed[2]!.equals(sent[2]!)).toBe(true);
  });

  it('a denied WebSocket gets 403 (unexpected-response) and is counted', async () => {
    const before = await metric(env, 'egress_decisions_total', { door: 'http', decision: 'deny', reason: 'not_allowlisted' });
    const ws = new WebSocket(`ws://denied.test:${wsPort}/`, { agent: absoluteForm(new AbsoluteFormAgent(env.proxyPort, '127.0.0.2')) });
    const status = await new Promise<number>((resolve) => {
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('error', () => resolve(-1));
    });
    expect(status).toBe(403);
    expect(await metric(env, 'egress_decisions_total', { door: 'http', decision: 'deny', reason: 'not_allowlisted' })).toBe(before + 1);
  });

  it('an open WebSocket is cut when its policy stops allowing the host', async () => {
    const p = await env.gw.api.policy('ws-only', { allowed_hostnames: ['ws.test'] });
    const box = await env.gw.api.devbox(p, ['127.0.0.11'], 'ws-box');
    const ws = new WebSocket(`ws://ws.test:${wsPort}/`, { agent: absoluteForm(new AbsoluteFormAgent(env.proxyPort, '127.0.0.11')) });
    await new Promise((r) => ws.once('message', r));
    let closedAt = 0;
    ws.on('close', () => (closedAt = Date.now()));
    const changed = Date.now();
    await env.gw.api.updatePolicy(p, { allowed_hostnames: ['other.test'] });
    expect(await until(() => closedAt > 0, 1500)).toBe(true);
    expect(closedAt - changed).toBeLessThan(1000);
    void box;
  });
});
