/**
 * Threat (issue 26), against the kind of front it was found on: a real HAProxy (Debian's
 * haproxy) terminating TLS on loopback with P-256 only and routing by `ssl_fc_sni` to a
 * `good` backend, or an `evil` one for evil.test. A devbox allowed front.test sends hello 1
 * naming it, gets HAProxy's HelloRetryRequest and sends hello 2 naming evil.test: HAProxy
 * takes the second name and, once the handshake completes (a minimal TLS 1.3 client,
 * test/fixtures/tls13-client.ts), sends the connection to the evil backend. The control
 * shows that straight to HAProxy; through CONNECT, SOCKS5 and transparent TLS the gateway
 * refuses hello 2, so HAProxy never sees evil.test, while an honest retry reaches the good
 * backend.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testCert } from '../support/origin.js';
import { waitFor } from '../support/wait.js';
import { type Spawned, requireProgram, spawnGroup } from '../support/real-clients.js';
import { TLS_DOORS, type TlsDoorsEnv, startTlsDoors } from '../support/tls-doors.js';
import { tls13WithRetry } from '../fixtures/tls13-client.js';

const HAPROXY = '/usr/sbin/haproxy';

let env: TlsDoorsEnv;
let haproxy: Spawned;
let port: number;
/** The two backends: each answers the first bytes with its name; `hits` counts connections. */
const backends: Record<'good' | 'evil', { server: net.Server; port: number; hits: number }> = {} as never;

async function startBackend(name: 'good' | 'evil'): Promise<void> {
  const b = { server: net.createServer(), port: 0, hits: 0 };
  b.server.on('connection', (s) => {
    b.hits++;
    s.on('error', () => {});
    s.on('data', () => s.end(`backend ${name}\n`));
  });
  await new Promise<void>((r) => b.server.listen(0, '127.0.0.1', r));
  b.port = (b.server.address() as net.AddressInfo).port;
  backends[name] = b;
}

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
  await startBackend('good');
  await startBackend('evil');
  const [good, evil] = [backends.good.port, backends.evil.port];
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
  for (const b of Object.values(backends)) await new Promise((r) => b.server.close(r));
});

/** The full handshake with a retry on `sock`, then one exchange: the backend's answer. */
async function throughFront(sock: net.Socket, sni2: string): Promise<string> {
  sock.on('error', () => {});
  try {
    const session = await tls13WithRetry(sock, 'front.test', sni2);
    session.send(Buffer.from('hello\n'));
    return (await session.receive()).toString().trim();
  } finally {
    sock.destroy();
  }
}

it('control: straight to HAProxy, the retry that switches to evil.test is routed to the evil backend', async () => {
  const direct = () => net.connect(port, '127.0.0.1');
  expect(await throughFront(direct(), 'front.test')).toBe('backend good');
  expect(await throughFront(direct(), 'evil.test')).toBe('backend evil');
  // Its own log says why: ssl_fc_sni, the fetch the rule reads, was hello 2's name. (Waited for, so no line arrives late in a later test.)
  expect(await waitFor(() => namesLogged().includes('evil.test') && namesLogged(), 10_000, 'the HAProxy log lines')).toEqual(['front.test', 'evil.test']);
});

describe.each(TLS_DOORS)('HAProxy routing by ssl_fc_sni, through %s', (door) => {
  it('a whole handshake with an honest retry reaches the good backend', async () => {
    expect(await throughFront(await env.open(door, 'front.test', port), 'front.test')).toBe('backend good');
  });

  it('the retry switching to evil.test is refused (access_denied): HAProxy never takes evil.test, the evil backend is never reached', async () => {
    const hits = backends.evil.hits;
    const logged = namesLogged().length;
    await expect(throughFront(await env.open(door, 'front.test', port), 'evil.test')).rejects.toThrow('alert 49 after hello 2');
    // HAProxy logs the handshake the gateway cut, under the only name it was given.
    const names = await waitFor(() => namesLogged().length > logged && namesLogged().slice(logged), 10_000, 'the HAProxy log line');
    expect(names).not.toContain('evil.test');
    expect(backends.evil.hits).toBe(hits);
  });
});
