/**
 * Threat (issue 26), against the kind of front it was found on: a real HAProxy (Debian's
 * haproxy) terminating TLS on loopback with P-256 only and routing by `ssl_fc_sni` (an
 * `evil` backend for evil.test). A devbox allowed front.test sends hello 1 naming it, gets
 * HAProxy's HelloRetryRequest and sends hello 2 naming evil.test: HAProxy takes the second
 * name (its `ssl_fc_sni`, the fetch the routing rule reads, is evil.test in its own log).
 * Through CONNECT, SOCKS5 and transparent TLS the gateway must refuse hello 2 so that
 * HAProxy only ever sees front.test; an honest retry reaches HAProxy's ServerHello.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testCert } from '../support/origin.js';
import { waitFor } from '../support/wait.js';
import { type Spawned, requireProgram, spawnGroup } from '../support/real-clients.js';
import { TLS_DOORS, type TlsDoorsEnv, helloRetryExchange, startTlsDoors } from '../support/tls-doors.js';
import { GROUP_P256 } from '../fixtures/tls13-hello.js';

const HAPROXY = '/usr/sbin/haproxy';

let env: TlsDoorsEnv;
let haproxy: Spawned;
let port: number;

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return p;
}

/** The SNI HAProxy logged for each connection that sent one, in order (`sni=` lines of its own log; '-' is none: the readiness probe). */
function namesLogged(): string[] {
  return [...haproxy.output().matchAll(/sni=(\S*)/g)].map((m) => m[1]!).filter((n) => n !== '-');
}

beforeAll(async () => {
  requireProgram(HAPROXY, 'haproxy');
  env = await startTlsDoors(['front.test', 'evil.test'], ['front.test']);
  const dir = mkdtempSync(join(tmpdir(), 'egw-haproxy-'));
  const { key, cert } = testCert();
  writeFileSync(join(dir, 'front.pem'), cert + key);
  port = await freePort();
  const [good, evil] = [await freePort(), await freePort()];
  writeFileSync(
    join(dir, 'haproxy.cfg'),
    [
      'global',
      '  log stdout format raw local0',
      'defaults',
      '  mode tcp',
      '  log global',
      '  timeout connect 2s',
      '  timeout client 10s',
      '  timeout server 10s',
      '  log-format "conn sni=%[ssl_fc_sni] backend=%b"',
      '  error-log-format "handshake-error sni=%[ssl_fc_sni]"',
      'frontend front',
      `  bind 127.0.0.1:${port} ssl crt ${join(dir, 'front.pem')} curves P-256 ssl-min-ver TLSv1.3`,
      '  use_backend evil if { ssl_fc_sni -i evil.test }',
      '  default_backend good',
      'backend good',
      `  server g 127.0.0.1:${good}`,
      'backend evil',
      `  server e 127.0.0.1:${evil}`,
      '',
    ].join('\n'),
  );
  haproxy = spawnGroup([HAPROXY, '-f', join(dir, 'haproxy.cfg'), '-db'], dir);
  await waitFor(
    () =>
      new Promise<boolean>((r) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.destroy();
          r(true);
        });
        s.on('error', () => r(false));
      }),
    20_000,
    'haproxy listening',
  );
}, 60_000);
afterAll(async () => {
  await env?.close();
  await haproxy?.kill();
});

describe.each(TLS_DOORS)('HAProxy routing by ssl_fc_sni, through %s', (door) => {
  it('an honest retry reaches HAProxy and its ServerHello comes back; HAProxy sees front.test', async () => {
    const logged = namesLogged().length;
    const r = await helloRetryExchange(await env.open(door, 'front.test', port), (c, cookie) => c.hello({ sni: 'front.test', shareGroup: GROUP_P256, cookie }));
    expect(r.first.kind).toBe('hrr');
    expect(r.second).toEqual({ kind: 'server_hello' });
    expect(await waitFor(() => namesLogged().length > logged && namesLogged().slice(logged), 10_000, 'the HAProxy log line')).toEqual(['front.test']);
  });

  it('hello 2 naming evil.test is refused: HAProxy never acts on evil.test', async () => {
    const logged = namesLogged().length;
    const r = await helloRetryExchange(await env.open(door, 'front.test', port), (c, cookie) => c.hello({ sni: 'evil.test', shareGroup: GROUP_P256, cookie }));
    expect(r.first.kind).toBe('hrr');
    expect(r.second).toEqual({ kind: 'alert', description: 49 });
    // HAProxy logs the failed handshake once the gateway closed it: with the first name only.
    const names = await waitFor(() => namesLogged().length > logged && namesLogged().slice(logged), 10_000, 'the HAProxy log line');
    expect(names).not.toContain('evil.test');
  });
});
