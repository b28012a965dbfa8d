/**
 * Regression (issue 26): headless Chromium, what agents drive for web tasks, could not load an
 * allowed HTTPS page through the CONNECT proxy: every Chromium ClientHello carries a GREASE
 * encrypted_client_hello extension and the gateway refused them all (`ech_refused`). A real
 * Debian Chromium here loads an allowed HTTPS page (CONNECT) and an allowed plain HTTP page
 * through the HTTP proxy; a denied page does not load and its origin is never reached.
 * The gateway resolves the names (Chromium sends them in CONNECT), to 127.0.0.1. The same
 * through the transparent TLS door (Chromium's resolver maps the name to the door, as a
 * firewall redirect would), and against an origin that only takes P-256, so every handshake
 * goes through a HelloRetryRequest and Chromium's second hello is judged too.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import nodeHttps from 'node:https';
import net from 'node:net';
import { HRR_RANDOM } from '../fixtures/tls13-hello.js';
import { type DnsUpstream, loopbackRecords, startDnsUpstream } from '../support/dns-upstream.js';
import { type TestGateway, startTestGateway } from '../support/gateway.js';
import { type Origin, startHttpOrigin, startHttpsOrigin, testCert } from '../support/origin.js';
import { metric } from '../support/proxy.js';
import { runChromium } from '../support/real-clients.js';

let gw: TestGateway;
let dns: DnsUpstream;
let https: Origin;
let http: Origin;
let proxy: string;
/** An HTTPS origin that only takes P-256: Chromium's first hello (X25519MLKEM768, X25519 shares) gets a HelloRetryRequest. */
let retryOrigin: nodeHttps.Server;
let retryPort: number;
/** A TCP relay in front of retryOrigin that notes whether the origin sent a HelloRetryRequest. */
let relay: net.Server;
let relayPort: number;
let retriesSeen = 0;

beforeAll(async () => {
  dns = await startDnsUpstream({ records: loopbackRecords(['allowed.test', 'denied.test']) });
  https = await startHttpsOrigin();
  http = await startHttpOrigin();
  gw = await startTestGateway({ upstreamDnsPort: dns.port, flags: { 'transparent-tls': '127.0.0.1:0' } });
  const { key, cert } = testCert();
  retryOrigin = nodeHttps.createServer({ key, cert, ecdhCurve: 'prime256v1' }, (req, res) => res.end(`<p>after a retry: ${req.url}</p>`));
  await new Promise<void>((r) => retryOrigin.listen(0, '127.0.0.1', r));
  retryPort = (retryOrigin.address() as net.AddressInfo).port;
  relay = net.createServer((c) => {
    const o = net.connect(retryPort, '127.0.0.1');
    c.on('error', () => o.destroy());
    o.on('error', () => c.destroy());
    o.on('data', (d: Buffer) => {
      if (d.includes(HRR_RANDOM)) retriesSeen++;
    });
    c.pipe(o).pipe(c);
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  relayPort = (relay.address() as net.AddressInfo).port;
  // Chromium connects to the proxy from 127.0.0.1: that is the devbox.
  const p = await gw.api.policy('browser', { allowed_hostnames: ['allowed.test'] });
  await gw.api.devbox(p, ['127.0.0.1'], 'box-browser');
  proxy = `--proxy-server=http://127.0.0.1:${gw.addr('http-proxy').port}`;
}, 60_000);
afterAll(async () => {
  await gw?.close();
  await new Promise((r) => relay?.close(r));
  retryOrigin?.closeAllConnections();
  await new Promise((r) => retryOrigin?.close(r));
  await https?.close();
  await http?.close();
  await dns?.close();
});

/** The page's DOM as Chromium dumps it (empty when the page did not load); through the proxy unless `via` is given. */
async function dumpDom(url: string, via: string[] = [proxy]): Promise<string> {
  const r = await runChromium([...via, '--ignore-certificate-errors', '--dump-dom', url]);
  const at = r.output.indexOf('<html');
  return at >= 0 ? r.output.slice(at) : '';
}

describe('headless Chromium through the HTTP proxy', () => {
  it('loads an allowed HTTPS page through CONNECT (its GREASE ECH hello judged by the SNI and relayed)', async () => {
    const before = await metric({ gw }, 'egress_tls_ech_total', { door: 'connect' });
    const dom = await dumpDom(`https://allowed.test:${https.port}/page`);
    expect(dom).toContain(`"host":"allowed.test:${https.port}"`);
    expect(https.seen.some((s) => s.url === '/page')).toBe(true);
    expect(await metric({ gw }, 'egress_tls_ech_total', { door: 'connect' })).toBeGreaterThan(before);
  }, 90_000);

  it('loads an allowed plain HTTP page', async () => {
    const dom = await dumpDom(`http://allowed.test:${http.port}/plain`);
    expect(dom).toContain('"url":"/plain"');
  }, 90_000);

  it('does not load a denied HTTPS page, and its origin is never reached', async () => {
    const before = await metric({ gw }, 'egress_decisions_total', { door: 'connect', decision: 'deny' });
    const dom = await dumpDom(`https://denied.test:${https.port}/secret`);
    expect(dom).not.toContain('/secret');
    expect(https.seen.some((s) => s.url === '/secret')).toBe(false);
    expect(await metric({ gw }, 'egress_decisions_total', { door: 'connect', decision: 'deny' })).toBeGreaterThan(before);
  }, 90_000);

  it('does not load a denied plain HTTP page', async () => {
    const dom = await dumpDom(`http://denied.test:${http.port}/secret-plain`);
    expect(dom).not.toContain('/secret-plain');
    expect(http.seen.some((s) => s.url === '/secret-plain')).toBe(false);
  }, 90_000);
});

describe('headless Chromium, more TLS paths', () => {
  it("loads an allowed page from an origin that answers with a HelloRetryRequest (Chromium's second hello judged, same name)", async () => {
    const dom = await dumpDom(`https://allowed.test:${relayPort}/retry`);
    expect(dom).toContain('after a retry: /retry');
    expect(retriesSeen).toBeGreaterThan(0);
  }, 90_000);

  it('loads an allowed HTTPS page through the transparent TLS door, and not a denied one', async () => {
    const door = gw.addr('transparent-tls').port;
    gw.gw.config.transparentTlsUpstreamPort = https.port;
    const map = (name: string) => [`--host-resolver-rules=MAP ${name} 127.0.0.1:${door}`];
    const dom = await dumpDom('https://allowed.test/transparent', map('allowed.test'));
    expect(dom).toContain('"url":"/transparent"');
    const denied = await dumpDom('https://denied.test/transparent-secret', map('denied.test'));
    expect(denied).not.toContain('transparent-secret');
    expect(https.seen.some((s) => s.url === '/transparent-secret')).toBe(false);
  }, 120_000);
});

describe('strict mode (--tls-ech refuse)', () => {
  it("refuses Chromium's hello (GREASE ECH) as documented: the allowed HTTPS page does not load, counted ech_refused", async () => {
    const strict = await startTestGateway({ upstreamDnsPort: dns.port, flags: { 'tls-ech': 'refuse' } });
    try {
      const p = await strict.api.policy('browser', { allowed_hostnames: ['allowed.test'] });
      await strict.api.devbox(p, ['127.0.0.1'], 'box-browser');
      const dom = await dumpDom(`https://allowed.test:${https.port}/strict`, [`--proxy-server=http://127.0.0.1:${strict.addr('http-proxy').port}`]);
      expect(dom).not.toContain('/strict');
      expect(https.seen.some((s) => s.url === '/strict')).toBe(false);
      expect(await metric({ gw: strict }, 'egress_decisions_total', { door: 'connect', decision: 'deny', reason: 'ech_refused' })).toBeGreaterThan(0);
    } finally {
      await strict.close();
    }
  }, 90_000);
});
