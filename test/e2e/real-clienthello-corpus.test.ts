/**
 * Regression (issue 26): the gateway refused every Chromium ClientHello (each carries a GREASE
 * encrypted_client_hello extension) and nothing in the suite ran a hello from a real
 * program. The corpus is captured at run time from the real clients on this machine
 * (Chromium headless, curl, openssl s_client with TLS 1.3 and 1.2, and with a post-quantum
 * hybrid share when this OpenSSL has one, Node, Python) and each hello is replayed through
 * CONNECT, SOCKS5 and transparent TLS, whole and split over TCP segments: relayed byte for
 * byte where the policy allows its name, refused (access_denied) where it does not. A
 * missing program fails with its package name.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { parseClientHello } from '../../src/doors/floor/clienthello.js';
import { metric } from '../support/proxy.js';
import { waitFor } from '../support/wait.js';
import { REAL_CLIENTS, captureHello, opensslHybridGroup } from '../support/real-clients.js';
import { TLS_DOORS, type TlsDoor, type TlsDoorsEnv, startTlsDoors } from '../support/tls-doors.js';

let env: TlsDoorsEnv;
let sink: net.Server;
let sinkPort: number;
const received: Buffer[] = [];
/** Captured hellos by client name. */
const corpus = new Map<string, Buffer>();

beforeAll(async () => {
  env = await startTlsDoors(['allowed.test', 'other.test'], ['allowed.test', 'other.test']);
  // Devbox 127.0.0.3 may reach other.test only: its transparent TLS hello for allowed.test is denied.
  const p = await env.gw.api.policy('other-only', { allowed_hostnames: ['other.test'] });
  await env.gw.api.devbox(p, ['127.0.0.3'], 'box-other');
  sink = net.createServer((s) => {
    const i = received.push(Buffer.alloc(0)) - 1;
    s.on('data', (d) => (received[i] = Buffer.concat([received[i]!, d])));
    s.on('error', () => {});
  });
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
  sinkPort = (sink.address() as net.AddressInfo).port;
}, 60_000);
afterAll(async () => {
  await env?.close();
  await new Promise((r) => sink?.close(r));
});

async function hello(name: string): Promise<Buffer> {
  const h = corpus.get(name);
  if (h === undefined) throw new Error(`no hello captured from ${name}`);
  return h;
}

/** Writes `bytes` in `parts` TCP segments (no delay: each write leaves as its own segment). */
async function writeSplit(sock: net.Socket, bytes: Buffer, parts: number): Promise<void> {
  sock.setNoDelay(true);
  const step = Math.ceil(bytes.length / parts);
  for (let i = 0; i < bytes.length; i += step) {
    await new Promise<void>((r) => sock.write(bytes.subarray(i, i + step), () => r()));
  }
}

/** Replays a hello through `door` to the sink; relayed = a connection the sink accepted since got it whole. */
async function replay(door: TlsDoor, h: Buffer, opts: { host: string; from?: string; parts: number }): Promise<{ relayed: boolean; answer: Buffer }> {
  const base = received.length;
  let sock: net.Socket;
  if (opts.from !== undefined && door === 'transparent-tls') {
    env.gw.gw.config.transparentTlsUpstreamPort = sinkPort;
    sock = await new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port: env.gw.addr('transparent-tls').port, localAddress: opts.from }, () => resolve(s));
      s.once('error', reject);
    });
  } else {
    sock = await env.open(door, opts.host, sinkPort);
  }
  const answer: Buffer[] = [];
  let closed = false;
  sock.on('data', (d) => answer.push(d));
  sock.on('error', () => {});
  sock.on('close', () => (closed = true));
  try {
    await writeSplit(sock, h, opts.parts);
    const relayed = () => received.slice(base).some((b) => b.equals(h));
    await waitFor(() => closed || relayed(), 10_000, 'the hello relayed or the tunnel closed');
    return { relayed: relayed(), answer: Buffer.concat(answer) };
  } finally {
    sock.destroy();
  }
}

const hybrid = opensslHybridGroup();
const CLIENTS = [...REAL_CLIENTS.map((c) => c.name), ...(hybrid !== null ? ['openssl s_client hybrid'] : [])];

describe('ClientHellos of the real clients on this machine', () => {
  it.each(REAL_CLIENTS)(
    '$name sends a hello naming allowed.test (captured)',
    async (client) => {
      const h = await captureHello(client, 'allowed.test');
      const info = parseClientHello(h);
      expect(info).toMatchObject({ sni: 'allowed.test' });
      if (client.name === 'chromium') expect(info).toMatchObject({ ech: true }); // GREASE ECH: what the old rule refused
      corpus.set(client.name, h);
    },
    90_000,
  );

  // OpenSSL 3.0 (Debian 12) has no hybrid KEM: then Chromium's X25519MLKEM768 hello stands in for a post-quantum one.
  it(hybrid !== null ? `openssl s_client -groups ${hybrid}: a post-quantum hello, replayed over several TCP segments` : "no hybrid KEM in this OpenSSL: Chromium's hello carries the post-quantum X25519MLKEM768 share (1,216 bytes) instead", async () => {
    if (hybrid === null) {
      const h = await hello('chromium');
      expect(h.includes(Buffer.from([0x11, 0xec, 0x04, 0xc0]))).toBe(true); // key_share entry: group 0x11ec, 1,216 bytes
      expect(h.length).toBeGreaterThan(1400);
      return;
    }
    const client = REAL_CLIENTS.find((c) => c.name === 'openssl s_client')!;
    const h = await captureHello(client, 'allowed.test', ['-groups', hybrid]);
    expect(h.length).toBeGreaterThan(1200);
    corpus.set('openssl s_client hybrid', h);
  }, 90_000);

  describe.each(TLS_DOORS)('replayed through %s', (door) => {
    it.each(CLIENTS)('%s: relayed where allowed.test is allowed, whole and in 4 segments', async (name) => {
      const h = await hello(name);
      for (const parts of [1, 4]) {
        const r = await replay(door, h, { host: 'allowed.test', parts });
        expect(r.relayed).toBe(true);
      }
    });

    it.each(CLIENTS)('%s: refused where its name is not the decided one', async (name) => {
      const h = await hello(name);
      const reason = door === 'transparent-tls' ? 'not_allowlisted' : 'sni_mismatch';
      const labels = { door, decision: 'deny', reason };
      const before = await metric(env, 'egress_decisions_total', labels);
      // CONNECT / SOCKS5 to other.test carrying a hello for allowed.test; transparent: a devbox whose policy lacks allowed.test.
      const r = await replay(door, h, { host: 'other.test', from: '127.0.0.3', parts: 3 });
      expect(r.relayed).toBe(false);
      expect([...r.answer.subarray(-7)]).toEqual([0x15, 3, 3, 0, 2, 2, 49]);
      expect(await metric(env, 'egress_decisions_total', labels)).toBe(before + 1);
    });
  });

  it('strict mode (--tls-ech refuse) refuses the Chromium hello on every door, as before', async () => {
    const h = await hello('chromium');
    env.gw.gw.config.tlsEch = 'refuse';
    try {
      for (const door of TLS_DOORS) {
        const r = await replay(door, h, { host: 'allowed.test', parts: 1 });
        expect(r.relayed).toBe(false);
        expect([...r.answer]).toEqual([0x15, 3, 3, 0, 2, 2, 49]);
      }
    } finally {
      env.gw.gw.config.tlsEch = 'relay';
    }
  });
});
