/**
 * Threat (issue 26): only the first ClientHello of a tunnel was read. A devbox sends hello 1
 * naming front.test (allowed) with a key share the server does not take, a real TLS 1.3
 * server (Node/OpenSSL, P-256 only) answers with a HelloRetryRequest, and hello 2 names
 * evil.test: the connection completes with `servername` evil.test (OpenSSL keeps hello 2's
 * name; the control shows it with a minimal TLS 1.3 client). Every
 * hello before the server's real ServerHello must pass the same rule as the first, on
 * CONNECT, SOCKS5 and transparent TLS; an ECH extension that appears only in hello 2 too.
 * The control: an honest retry (same name) goes through and the server's ServerHello
 * reaches the client.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import netModule from 'node:net';
import type net from 'node:net';
import tls from 'node:tls';
import { metric } from '../support/proxy.js';
import { testCert } from '../support/origin.js';
import { waitFor } from '../support/wait.js';
import { type RetryResult, TLS_DOORS, type TlsDoor, type TlsDoorsEnv, helloRetryExchange, startTlsDoors } from '../support/tls-doors.js';
import { CCS, GROUP_P256, GROUP_X25519, Tls13Client } from '../fixtures/tls13-hello.js';
import { tls13WithRetry } from '../fixtures/tls13-client.js';

const ECH_GREASE = Buffer.concat([Buffer.from([0, 0, 1, 0, 1, 0x2a, 0, 32]), Buffer.alloc(32, 5), Buffer.from([0, 16]), Buffer.alloc(16, 6)]);

let env: TlsDoorsEnv;
let server: tls.Server;
let serverPort: number;
/** Every name the server's SNI callback was called with (it picks the certificate from hello 1). */
const namesSeen: string[] = [];
/** The `servername` of every completed connection: what an application routes by (OpenSSL's SSL_get_servername). */
const servernames: string[] = [];

beforeAll(async () => {
  env = await startTlsDoors(['front.test', 'evil.test'], ['front.test']);
  const { key, cert } = testCert();
  const secure = tls.createSecureContext({ key, cert });
  server = tls.createServer(
    {
      key,
      cert,
      ecdhCurve: 'prime256v1',
      minVersion: 'TLSv1.3',
      SNICallback: (name, cb) => {
        namesSeen.push(name);
        cb(null, secure);
      },
    },
    (s) => {
      servernames.push((s as tls.TLSSocket & { servername?: string }).servername ?? '');
      s.on('error', () => {});
      s.on('data', () => s.end(`hello ${(s as tls.TLSSocket & { servername?: string }).servername}\n`));
    },
  );
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  serverPort = (server.address() as net.AddressInfo).port;
});
afterAll(async () => {
  await env?.close();
  await new Promise((r) => server?.close(r));
});

/** hello 1 (X25519 share only) → HRR → CCS + hello 2 (P-256 share) built by `second`. */
async function retry(door: TlsDoor, second: (c: Tls13Client, cookie: Buffer | null) => Buffer, firstExtensions: Array<[number, Buffer]> = []): Promise<RetryResult> {
  return helloRetryExchange(await env.open(door, 'front.test', serverPort), second, firstExtensions);
}

it('control: straight to the server, the switch completes and the server names the connection evil.test', async () => {
  const sock = netModule.connect(serverPort, '127.0.0.1');
  sock.on('error', () => {});
  await new Promise((r) => sock.once('connect', r));
  const session = await tls13WithRetry(sock, 'front.test', 'evil.test');
  session.send(Buffer.from('hi'));
  expect((await session.receive()).toString()).toBe('hello evil.test\n');
  sock.destroy();
});

describe.each(TLS_DOORS)('through %s', (door) => {
  it('an honest retry (hello 2 names front.test again) reaches the server and its ServerHello comes back', async () => {
    const r = await retry(door, (c, cookie) => c.hello({ sni: 'front.test', shareGroup: GROUP_P256, cookie }));
    expect(r.first.kind).toBe('hrr');
    expect(r.second).toEqual({ kind: 'server_hello' });
  });

  it('hello 2 switching the SNI to evil.test is refused (access_denied) and never reaches the server', async () => {
    const labels = { door, decision: 'deny', reason: 'sni_mismatch' };
    const before = await metric(env, 'egress_decisions_total', labels);
    namesSeen.length = 0;
    const r = await retry(door, (c, cookie) => c.hello({ sni: 'evil.test', shareGroup: GROUP_P256, cookie }));
    expect(r.first.kind).toBe('hrr');
    expect(r.second).toEqual({ kind: 'alert', description: 49 });
    expect(namesSeen).toEqual(['front.test']);
    expect(await metric(env, 'egress_decisions_total', labels)).toBe(before + 1);
  });

  it('a whole handshake: the honest retry completes; the switch to evil.test is refused before the server can take it', async () => {
    const honest = await tls13WithRetry(await env.open(door, 'front.test', serverPort), 'front.test', 'front.test');
    honest.send(Buffer.from('hi'));
    expect((await honest.receive()).toString()).toBe('hello front.test\n');
    const before = servernames.length;
    const sock = await env.open(door, 'front.test', serverPort);
    sock.on('error', () => {});
    await expect(tls13WithRetry(sock, 'front.test', 'evil.test')).rejects.toThrow('alert 49 after hello 2');
    sock.destroy();
    expect(servernames.slice(before)).not.toContain('evil.test');
  });

  it('hello 2 sent in the same write as hello 1, before any retry, is judged too (and refused)', async () => {
    namesSeen.length = 0;
    const sock = await env.open(door, 'front.test', serverPort);
    const got: Buffer[] = [];
    sock.on('data', (d) => got.push(d));
    sock.on('error', () => {});
    let closed = false;
    sock.on('close', () => (closed = true));
    const c = new Tls13Client();
    sock.write(Buffer.concat([c.hello({ sni: 'front.test', shareGroup: GROUP_X25519 }), CCS, c.hello({ sni: 'evil.test', shareGroup: GROUP_P256 })]));
    await waitFor(() => closed, 10_000, 'the gateway closing the tunnel');
    expect([...Buffer.concat(got).subarray(-7)]).toEqual([0x15, 3, 3, 0, 2, 2, 49]);
    expect(namesSeen).not.toContain('evil.test');
  });

  it('a hello 2 left unfinished is closed after --header-timeout-ms (decode_error), its bytes never relayed', async () => {
    const before = await metric(env, 'egress_protocol_errors_total', { door, kind: 'client_hello' });
    const saved = env.gw.gw.config.headerTimeoutMs;
    env.gw.gw.config.headerTimeoutMs = 300;
    try {
      const r = await retry(door, (c, cookie) => c.hello({ sni: 'evil.test', shareGroup: GROUP_P256, cookie }).subarray(0, 60));
      expect(r.first.kind).toBe('hrr');
      expect(r.second).toEqual({ kind: 'alert', description: 50 });
    } finally {
      env.gw.gw.config.headerTimeoutMs = saved;
    }
    expect(await metric(env, 'egress_protocol_errors_total', { door, kind: 'client_hello' })).toBe(before + 1);
  });

  it('hello 2 dropping the SNI is refused', async () => {
    const r = await retry(door, (c, cookie) => c.hello({ sni: null, shareGroup: GROUP_P256, cookie }));
    expect(r.second).toEqual({ kind: 'alert', description: 49 });
  });

  it('an ECH extension that appears only in hello 2 is refused (ech_refused)', async () => {
    const labels = { door, decision: 'deny', reason: 'ech_refused' };
    const before = await metric(env, 'egress_decisions_total', labels);
    const r = await retry(door, (c, cookie) => c.hello({ sni: 'front.test', shareGroup: GROUP_P256, cookie, extensions: [[0xfe0d, ECH_GREASE]] }));
    expect(r.first.kind).toBe('hrr');
    expect(r.second).toEqual({ kind: 'alert', description: 49 });
    expect(await metric(env, 'egress_decisions_total', labels)).toBe(before + 1);
  });

  it('GREASE ECH in both hellos (as Chromium sends it) is relayed by default and counted', async () => {
    const before = await metric(env, 'egress_tls_ech_total', { door });
    const ech: Array<[number, Buffer]> = [[0xfe0d, ECH_GREASE]];
    const r = await retry(door, (c, cookie) => c.hello({ sni: 'front.test', shareGroup: GROUP_P256, cookie, extensions: ech }), ech);
    expect(r.first.kind).toBe('hrr');
    expect(r.second).toEqual({ kind: 'server_hello' });
    expect(await metric(env, 'egress_tls_ech_total', { door })).toBe(before + 2);
  });
});

describe('after the real ServerHello the tunnel is a plain splice again', () => {
  /** A raw TLS-ish server: answers hello 1 with a ServerHello (not a retry) and keeps every byte it gets. */
  let raw: net.Server;
  let rawPort: number;
  const got: Buffer[] = [];
  const serverHello = (() => {
    const body = Buffer.concat([Buffer.from([3, 3]), Buffer.alloc(32, 1), Buffer.from([0, 0x13, 0x01, 0, 0, 6, 0, 43, 0, 2, 3, 4])]);
    const msg = Buffer.concat([Buffer.from([2, 0, 0, body.length]), body]);
    return Buffer.concat([Buffer.from([0x16, 3, 3, 0, msg.length]), msg]);
  })();

  beforeAll(async () => {
    raw = netModule.createServer((s) => {
      const i = got.push(Buffer.alloc(0)) - 1;
      s.on('error', () => {});
      s.on('data', (d) => {
        if (got[i]!.length === 0) s.write(serverHello);
        got[i] = Buffer.concat([got[i]!, d]);
      });
    });
    await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
    rawPort = (raw.address() as net.AddressInfo).port;
  });
  afterAll(() => new Promise((r) => raw?.close(r)));

  it.each(TLS_DOORS)('through %s: bytes after the ServerHello, a ClientHello for evil.test included, are relayed unread', async (door) => {
    const base = got.length; // CONNECT and SOCKS5 dial before the hello, transparent TLS after
    const sock = await env.open(door, 'front.test', rawPort);
    let answer = Buffer.alloc(0);
    sock.on('data', (d) => (answer = Buffer.concat([answer, d])));
    sock.on('error', () => {});
    try {
      const c = new Tls13Client();
      const hello1 = c.hello({ sni: 'front.test', shareGroup: GROUP_X25519 });
      sock.write(hello1);
      await waitFor(() => answer.length >= serverHello.length, 10_000, 'the ServerHello');
      // Not a TLS 1.3 message a server would take: the window is over, so the gateway does not read it.
      const later = c.hello({ sni: 'evil.test', shareGroup: GROUP_P256 });
      sock.write(later);
      await waitFor(() => got.slice(base).some((b) => b.equals(Buffer.concat([hello1, later]))), 10_000, 'both hellos at the server');
    } finally {
      sock.destroy();
    }
  });
});
