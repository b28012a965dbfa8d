/**
 * An Upgrade request whose origin never answers, or answers garbage: the gateway holds the
 * client's bytes until the origin says 101, so it must not hang forever or pass garbage on.
 * A silent origin gets the client a 504 after the header time-out; a malformed answer a 502;
 * both connections are closed and the devbox's open-connection count returns to zero.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { startDnsUpstream, loopbackRecords, type DnsUpstream } from '../support/dns-upstream.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { rawExchange } from '../support/raw-socket.js';
import { waitFor } from '../support/wait.js';

let up: DnsUpstream;
let gw: TestGateway;
let silent: net.Server;
let garbage: net.Server;
const held: net.Socket[] = [];

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as net.AddressInfo).port;
}

beforeAll(async () => {
  silent = net.createServer((s) => {
    held.push(s); // reads the request, never answers
    s.on('error', () => {});
  });
  garbage = net.createServer((s) => {
    s.on('error', () => {});
    s.once('data', () => s.write('NOT HTTP AT ALL\r\n\r\n'));
  });
  up = await startDnsUpstream({ records: loopbackRecords(['origin.test']) });
  gw = await startTestGateway({ upstreamDnsPort: up.port, flags: { 'header-timeout-ms': '400' } });
  const p = await gw.api.policy('p', { allowed_hostnames: ['origin.test'] });
  await gw.api.devbox(p, ['127.0.0.2']);
});

afterAll(async () => {
  for (const s of held) s.destroy();
  await gw?.close();
  await up?.close();
  await new Promise<void>((r) => silent.close(() => r()));
  await new Promise<void>((r) => garbage.close(() => r()));
});

const upgrade = (port: number) => `GET http://origin.test:${port}/ws HTTP/1.1\r\nHost: origin.test:${port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` + 'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n';

describe('upgrade to a hostile origin', () => {
  it('a silent origin: 504 after the header time-out, connection closed', async () => {
    const port = await listen(silent);
    const r = await rawExchange(gw.addr('http-proxy').port, upgrade(port), { localAddress: '127.0.0.2', timeoutMs: 5000 });
    expect(r.received.toString('latin1')).toMatch(/^HTTP\/1\.1 504 /);
    expect(r.closed).toBe(true);
  });

  it('an origin that answers garbage: 502, and nothing of it reaches the client', async () => {
    const port = await listen(garbage);
    const r = await rawExchange(gw.addr('http-proxy').port, upgrade(port), { localAddress: '127.0.0.2', timeoutMs: 5000 });
    const text = r.received.toString('latin1');
    expect(text).toMatch(/^HTTP\/1\.1 502 /);
    expect(text).not.toContain('NOT HTTP AT ALL');
    expect(r.closed).toBe(true);
  });

  it('leaves no tracked connection behind', async () => {
    const active = async () => (await (await fetch(`${gw.apiUrl}/metrics`)).text()).split('\n').find((l) => l.startsWith('egress_active_connections{door="http"}'));
    const idle = 'egress_active_connections{door="http"} 0';
    await waitFor(async () => (await active()) === idle, 5000, 'no active http connection').catch(() => {});
    expect(await active()).toBe(idle);
  });
});
