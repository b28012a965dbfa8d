/**
 * Threats: (1) a SOCKS5 tunnel to an allowed destination carrying a ClientHello for a
 * denied name (SOCKS5 used to relay it unchecked: any name sharing an address with an
 * allowed one was reachable); (2) a ClientHello with Encrypted ClientHello (0xfe0d),
 * ech_outer_extensions (0xfd00) or a pre-standard ECH/ESNI codepoint, whose real name is
 * hidden behind an allowed outer name: refused in strict mode (--tls-ech refuse); by
 * default (browsers send GREASE ECH in every hello) judged by the outer name and relayed.
 * One case table runs each ClientHello through every TLS path: CONNECT (name and IP),
 * SOCKS5 (domain, IPv4 by CIDR, IPv4 learned through the DNS door, IPv6) and the
 * transparent TLS door. The destination is a raw TCP sink that records what reaches it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';
import { type ProxyEnv, connectTunnel, metric, startProxyEnv, until } from '../support/proxy.js';
import { socksConnect } from '../support/socks.js';
import { clientHello } from '../fixtures/clienthello.js';

interface Sink {
  port: number;
  got: Buffer[];
  close(): Promise<void>;
}

/** Accepts on 127.0.0.1 and ::1 and keeps every connection's bytes. */
async function startSink(): Promise<Sink> {
  const got: Buffer[] = [];
  const socks = new Set<net.Socket>();
  const server = net.createServer((s) => {
    socks.add(s);
    const i = got.push(Buffer.alloc(0)) - 1;
    s.on('data', (d) => (got[i] = Buffer.concat([got[i]!, d])));
    s.on('error', () => {});
    s.on('close', () => socks.delete(s));
  });
  await new Promise<void>((r) => server.listen({ port: 0, host: '::', ipv6Only: false }, r));
  return {
    port: (server.address() as net.AddressInfo).port,
    got,
    close: async () => {
      for (const s of socks) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

type Door = 'connect-name' | 'connect-ip' | 'socks-domain' | 'socks-ipv4' | 'socks-ipv4-learned' | 'socks-ipv6' | 'transparent';
const DOORS: Door[] = ['connect-name', 'connect-ip', 'socks-domain', 'socks-ipv4', 'socks-ipv4-learned', 'socks-ipv6', 'transparent'];
const METRIC_DOOR: Record<Door, string> = {
  'connect-name': 'connect',
  'connect-ip': 'connect',
  'socks-domain': 'socks5',
  'socks-ipv4': 'socks5',
  'socks-ipv4-learned': 'socks5',
  'socks-ipv6': 'socks5',
  transparent: 'transparent-tls',
};

type Outcome = 'relayed' | { alert: number; reason: string };
const DENIED = 49;
const UNRECOGNIZED = 112;
const sniMismatch: Outcome = { alert: DENIED, reason: 'sni_mismatch' };
const echRefused: Outcome = { alert: DENIED, reason: 'ech_refused' };

interface Case {
  name: string;
  sni: string | null;
  extensions?: Array<[number, Buffer]>;
  /** Run with --tls-ech refuse. */
  strict?: boolean;
  /** Outcome per door; name destinations are allowed.test, address ones 127.0.0.1 / ::1. */
  expect: Record<Door, Outcome>;
}

const all = (o: Outcome): Record<Door, Outcome> => Object.fromEntries(DOORS.map((d) => [d, o])) as Record<Door, Outcome>;
const byKind = (name: Outcome, ip: Outcome, transparent: Outcome): Record<Door, Outcome> => ({
  'connect-name': name,
  'socks-domain': name,
  'connect-ip': ip,
  'socks-ipv4': ip,
  'socks-ipv4-learned': ip,
  'socks-ipv6': ip,
  transparent,
});

const ECH_PAYLOAD = Buffer.from([0, 0, 1, 0, 1, 0x2a, 0, 0, 0, 0]);

const CASES: Case[] = [
  { name: 'SNI = the destination name', sni: 'allowed.test', expect: all('relayed') },
  { name: 'SNI of a denied name', sni: 'denied.test', expect: byKind(sniMismatch, sniMismatch, { alert: DENIED, reason: 'not_allowlisted' }) },
  { name: 'SNI of another allowed name', sni: 'www.allowed.test', expect: byKind(sniMismatch, 'relayed', 'relayed') },
  { name: 'no SNI', sni: null, expect: byKind('relayed', 'relayed', { alert: UNRECOGNIZED, reason: 'invalid_host' }) },
  { name: 'encrypted_client_hello (0xfe0d) behind an allowed outer name, default: relayed', sni: 'allowed.test', extensions: [[0xfe0d, ECH_PAYLOAD]], expect: all('relayed') },
  { name: 'encrypted_client_hello (0xfe0d) behind a denied outer name, default: judged by that name', sni: 'denied.test', extensions: [[0xfe0d, ECH_PAYLOAD]], expect: byKind(sniMismatch, sniMismatch, { alert: DENIED, reason: 'not_allowlisted' }) },
  { name: 'strict: encrypted_client_hello (0xfe0d) behind an allowed outer name', sni: 'allowed.test', extensions: [[0xfe0d, ECH_PAYLOAD]], strict: true, expect: all(echRefused) },
  { name: 'strict: ech_outer_extensions (0xfd00)', sni: 'allowed.test', extensions: [[0xfd00, Buffer.from([2, 0, 10])]], strict: true, expect: all(echRefused) },
  ...[0xffce, 0xff02, 0xfe08, 0xfe0a, 0xfe0c].map((t): Case => ({ name: `strict: pre-standard ECH/ESNI codepoint 0x${t.toString(16)}`, sni: 'allowed.test', extensions: [[t, ECH_PAYLOAD]], strict: true, expect: all(echRefused) })),
];

let env: ProxyEnv;
let sink: Sink;
let tport: number;
let socksPort: number;
let cidrBox: { username: string; password: string };

beforeAll(async () => {
  env = await startProxyEnv({ 'transparent-tls': '127.0.0.1:0', 'allow-private': ['127.0.0.0/8', '::1/128'] });
  sink = await startSink();
  tport = env.gw.addr('transparent-tls').port;
  socksPort = env.gw.addr('socks5').port;
  env.gw.gw.config.transparentTlsUpstreamPort = sink.port;
  const p = await env.gw.api.policy('cidrs-and-names', {
    allowed_cidrs: [{ cidr: '127.0.0.1/32' }, { cidr: '::1/128' }],
    allowed_hostnames: ['allowed.test', 'www.allowed.test'],
  });
  cidrBox = await env.gw.api.devbox(p, ['127.0.0.5'], 'box-cidr');
  // Devbox A (127.0.0.2) learns allowed.test's address through the DNS door.
  const dnsPort = env.gw.addr('dns').port;
  const udp = dgram.createSocket('udp4');
  await new Promise<void>((r) => udp.bind(0, '127.0.0.2', r));
  const answered = new Promise<Buffer>((r) => udp.once('message', r));
  udp.send(dnsPacket.encode({ type: 'query', id: 7, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: 'allowed.test' }] }), dnsPort, '127.0.0.1');
  const answer = dnsPacket.decode(await answered);
  udp.close();
  expect(answer.answers?.[0]).toMatchObject({ type: 'A', data: '127.0.0.1' });
});
afterAll(async () => {
  await env?.close();
  await sink?.close();
});

/** A tunnel to the sink through `door`, for the devbox the door's case needs. */
async function open(door: Door): Promise<net.Socket> {
  const a = { localAddress: '127.0.0.2' };
  const cidr = { userId: cidrBox.username, password: cidrBox.password };
  switch (door) {
    case 'connect-name':
      return connectTunnel(env.proxyPort, `allowed.test:${sink.port}`, a);
    case 'connect-ip':
      return connectTunnel(env.proxyPort, `127.0.0.1:${sink.port}`, { auth: `${cidrBox.username}:${cidrBox.password}` });
    case 'socks-domain':
      return socksConnect(socksPort, { host: 'allowed.test', port: sink.port }, a);
    case 'socks-ipv4':
      return socksConnect(socksPort, { host: '127.0.0.1', port: sink.port }, cidr);
    case 'socks-ipv4-learned':
      return socksConnect(socksPort, { host: '127.0.0.1', port: sink.port }, a);
    case 'socks-ipv6':
      return socksConnect(socksPort, { host: '::1', port: sink.port }, cidr);
    case 'transparent':
      return new Promise((resolve, reject) => {
        const s = net.connect({ host: '127.0.0.1', port: tport, localAddress: '127.0.0.2' }, () => resolve(s));
        s.once('error', reject);
      });
  }
}

/** Sends the hello; resolves once the sink has it (relayed) or the gateway closed the client. */
async function exchange(door: Door, hello: Buffer): Promise<{ relayed: boolean; received: Buffer }> {
  const sock = await open(door);
  const got: Buffer[] = [];
  let closed = false;
  sock.on('data', (d) => got.push(d));
  sock.on('error', () => {});
  sock.on('close', () => (closed = true));
  sock.write(hello);
  const relayed = () => sink.got.some((b) => b.includes(hello));
  await until(() => closed || relayed(), 5000);
  const result = { relayed: relayed(), received: Buffer.concat(got) };
  sock.destroy();
  return result;
}

let serial = 0;
describe.each(CASES)('$name', (c) => {
  it.each(DOORS)('through %s', async (door) => {
    // A unique padding length marks this hello, so the sink can tell it from the others.
    const hello = clientHello({ sni: c.sni, extensions: c.extensions, padding: 100 + ++serial });
    const want = c.expect[door];
    const labels = typeof want === 'string' ? null : { door: METRIC_DOOR[door], decision: 'deny', reason: want.reason };
    const before = labels ? await metric(env, 'egress_decisions_total', labels) : 0;
    env.gw.gw.config.tlsEch = c.strict ? 'refuse' : 'relay';
    const r = await exchange(door, hello).finally(() => (env.gw.gw.config.tlsEch = 'relay'));
    if (want === 'relayed') {
      expect(r.relayed).toBe(true);
      return;
    }
    expect(r.relayed).toBe(false);
    expect([...r.received]).toEqual([0x15, 3, 3, 0, 2, 2, want.alert]);
    expect(await metric(env, 'egress_decisions_total', labels!)).toBe(before + 1);
  });
});
