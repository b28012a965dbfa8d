/**
 * Threat (issue 26): only the first ClientHello of a tunnel was read. A devbox sends hello 1
 * naming front.test (allowed) with a key share the server does not take, a real TLS 1.3
 * server (Node/OpenSSL, P-256 only) answers with a HelloRetryRequest, and hello 2 names
 * evil.test: OpenSSL acts on the second name (its SNI callback is called with it). Every
 * hello before the server's real ServerHello must pass the same rule as the first, on
 * CONNECT, SOCKS5 and transparent TLS; an ECH extension that appears only in hello 2 too.
 * The control: an honest retry (same name) goes through and the server's ServerHello
 * reaches the client.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type net from 'node:net';
import tls from 'node:tls';
import { metric } from '../support/proxy.js';
import { testCert } from '../support/origin.js';
import { waitFor } from '../support/wait.js';
import { type RetryResult, TLS_DOORS, type TlsDoor, type TlsDoorsEnv, helloRetryExchange, startTlsDoors } from '../support/tls-doors.js';
import { CCS, GROUP_P256, GROUP_X25519, Tls13Client } from '../fixtures/tls13-hello.js';

const ECH_GREASE = Buffer.concat([Buffer.from([0, 0, 1, 0, 1, 0x2a, 0, 32]), Buffer.alloc(32, 5), Buffer.from([0, 16]), Buffer.alloc(16, 6)]);

let env: TlsDoorsEnv;
let server: tls.Server;
let serverPort: number;
/** Every name the server's SNI callback was called with. */
const namesSeen: string[] = [];

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
    (s) => s.end('hello from the origin\n'),
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
