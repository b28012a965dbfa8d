/**
 * The three TLS doors side by side, for tests that run one TLS exchange through each:
 * a gateway with CONNECT, SOCKS5 and transparent TLS, a test DNS upstream answering
 * 127.0.0.1 for the given names, and devbox 127.0.0.2 whose policy allows `allowed`.
 * `open(door, host, port)` gives a socket to host:port through that door (the transparent
 * door dials the port set with `transparentPort`, as a firewall redirect would hide it).
 */
import net from 'node:net';
import { type DnsUpstream, loopbackRecords, startDnsUpstream } from './dns-upstream.js';
import { type TestGateway, startTestGateway } from './gateway.js';
import { connectTunnel } from './proxy.js';
import { socksConnect } from './socks.js';
import { waitFor } from './wait.js';
import { CCS, GROUP_X25519, type ServerFlight, Tls13Client, readServerFlight } from '../fixtures/tls13-hello.js';

export type TlsDoor = 'connect' | 'socks5' | 'transparent-tls';
export const TLS_DOORS: TlsDoor[] = ['connect', 'socks5', 'transparent-tls'];

export interface TlsDoorsEnv {
  gw: TestGateway;
  dns: DnsUpstream;
  proxyPort: number;
  /** The devbox's address (its policy allows `allowed`). */
  devbox: string;
  open(door: TlsDoor, host: string, port: number): Promise<net.Socket>;
  close(): Promise<void>;
}

export async function startTlsDoors(names: string[], allowed: string[], flags: Record<string, string | string[]> = {}): Promise<TlsDoorsEnv> {
  const dns = await startDnsUpstream({ records: loopbackRecords(names) });
  const gw = await startTestGateway({ upstreamDnsPort: dns.port, flags: { 'transparent-tls': '127.0.0.1:0', ...flags } });
  try {
    const p = await gw.api.policy('tls-doors', { allowed_hostnames: allowed });
    await gw.api.devbox(p, ['127.0.0.2'], 'box-tls');
  } catch (e) {
    await gw.close();
    await dns.close();
    throw e;
  }
  const proxyPort = gw.addr('http-proxy').port;
  const socksPort = gw.addr('socks5').port;
  const tlsPort = gw.addr('transparent-tls').port;
  const devbox = '127.0.0.2';
  return {
    gw,
    dns,
    proxyPort,
    devbox,
    open: (door, host, port) => {
      switch (door) {
        case 'connect':
          return connectTunnel(proxyPort, `${host}:${port}`, { localAddress: devbox });
        case 'socks5':
          return socksConnect(socksPort, { host, port }, { localAddress: devbox });
        case 'transparent-tls':
          gw.gw.config.transparentTlsUpstreamPort = port;
          return new Promise((resolve, reject) => {
            const s = net.connect({ host: '127.0.0.1', port: tlsPort, localAddress: devbox }, () => resolve(s));
            s.once('error', reject);
          });
      }
    },
    close: async () => {
      await gw.close();
      await dns.close();
    },
  };
}

export interface RetryResult {
  /** What the server answered hello 1 with. */
  first: ServerFlight;
  /** What came after hello 2: the server's ServerHello, or the gateway's alert. */
  second: ServerFlight;
}

/**
 * A TLS 1.3 retry on `sock`: hello 1 for front.test with an X25519 share only, the server's
 * HelloRetryRequest, then ChangeCipherSpec + hello 2 built by `second` (with the HRR's cookie).
 * The socket is destroyed at the end.
 */
export async function helloRetryExchange(sock: net.Socket, second: (c: Tls13Client, cookie: Buffer | null) => Buffer, firstExtensions: Array<[number, Buffer]> = []): Promise<RetryResult> {
  let got = Buffer.alloc(0);
  let closed = false;
  sock.on('data', (d) => (got = Buffer.concat([got, d])));
  sock.on('error', () => {});
  sock.on('close', () => (closed = true));
  const answer = (from: number, what: string) => waitFor(() => (readServerFlight(got.subarray(from)).kind !== 'incomplete' ? readServerFlight(got.subarray(from)) : closed ? ({ kind: 'incomplete' } as const) : null), 10_000, what);
  try {
    const client = new Tls13Client();
    sock.write(client.hello({ sni: 'front.test', shareGroup: GROUP_X25519, extensions: firstExtensions }));
    const first = await answer(0, 'the answer to hello 1');
    if (first.kind !== 'hrr') return { first, second: first };
    // What follows the HRR's own records (and the server's CCS) is the answer to hello 2.
    const mark = got.length;
    sock.write(Buffer.concat([CCS, second(client, first.cookie)]));
    return { first, second: await answer(mark, 'the answer to hello 2') };
  } finally {
    sock.destroy();
  }
}
