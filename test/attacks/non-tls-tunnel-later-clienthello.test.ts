/**
 * Decided behaviour (docs/doors.md, "Tunnels that do not start with TLS"): a CONNECT or
 * SOCKS5 tunnel whose first bytes are not TLS is an opaque tunnel to the address that was
 * decided; a ClientHello for another name later in it is relayed like any other byte,
 * and only ever to that address. A tunnel that starts with TLS is checked (and an SNI
 * mismatch closes it) however the hello is split.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { type ProxyEnv, connectTunnel, startProxyEnv, until } from '../support/proxy.js';
import { socksConnect } from '../support/socks.js';
import { clientHello } from '../fixtures/clienthello.js';

let env: ProxyEnv;
let sink: net.Server;
let sinkPort: number;
const got: Buffer[] = [];

beforeAll(async () => {
  env = await startProxyEnv();
  sink = net.createServer((s) => {
    const i = got.push(Buffer.alloc(0)) - 1;
    s.on('data', (d) => (got[i] = Buffer.concat([got[i]!, d])));
    s.on('error', () => {});
  });
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
  sinkPort = (sink.address() as net.AddressInfo).port;
});
afterAll(async () => {
  await env?.close();
  sink?.close();
});

const SSH_BANNER = Buffer.from('SSH-2.0-OpenSSH_9.6\r\n');

describe('a tunnel that does not start with TLS', () => {
  it.each([
    ['CONNECT', () => connectTunnel(env.proxyPort, `allowed.test:${sinkPort}`, { localAddress: '127.0.0.2' })],
    ['SOCKS5', () => socksConnect(env.gw.addr('socks5').port, { host: 'allowed.test', port: sinkPort }, { localAddress: '127.0.0.2' })],
  ])('%s: relayed as an opaque tunnel to the decided address, a later ClientHello included', async (_door, open) => {
    const sock = await open();
    sock.on('error', () => {});
    sock.write(SSH_BANNER);
    await until(() => got.some((b) => b.equals(SSH_BANNER)), 3000);
    const hello = clientHello({ sni: 'denied.test', padding: 321 });
    sock.write(hello);
    expect(await until(() => got.some((b) => b.equals(Buffer.concat([SSH_BANNER, hello]))), 3000)).toBe(true);
    expect(sock.destroyed).toBe(false);
    sock.destroy();
  });

  it('whereas a tunnel that starts with TLS is checked: the same hello first is refused', async () => {
    const sock = await connectTunnel(env.proxyPort, `allowed.test:${sinkPort}`, { localAddress: '127.0.0.2' });
    const received: Buffer[] = [];
    sock.on('data', (d) => received.push(d));
    sock.on('error', () => {});
    const closed = new Promise((r) => sock.on('close', r));
    const hello = clientHello({ sni: 'denied.test', padding: 322 });
    sock.write(hello);
    await closed;
    expect([...Buffer.concat(received)]).toEqual([0x15, 3, 3, 0, 2, 2, 49]);
    expect(got.some((b) => b.includes(hello))).toBe(false);
  });
});
