/**
 * Attack: one devbox exhausts the gateway's file descriptors. --max-connections-per-devbox
 * ("concurrent connections per devbox") only counts connections that reached upstream
 * (tunnels and requests in flight, via the ConnectionTracker). Client sockets that are
 * idle between keep-alive requests (kept for up to min(idle timeout, 120 s) and refreshed
 * by one cheap denied request), or sitting in a SOCKS5 handshake (up to the header
 * time-out, then simply reopened), are not counted at all, so a single devbox can hold as
 * many sockets as the gateway's fd limit allows and starve every other devbox.
 *
 * Expected: client connections from one devbox (or one source address, for unknown
 * clients) are capped, at accept time, near --max-connections-per-devbox.
 * Fix: count accepted client sockets per source address / identity in
 * src/doors/http/door.ts startHttpDoor ('connection') and src/doors/socks5/door.ts (accept),
 * close the excess (or add a --max-client-connections-per-source flag defaulting to a
 * small multiple of the per-devbox limit).
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/gateway.js';

const LIMIT = 5;
const FLOOD = 60;
let gw: TestGateway;
beforeAll(async () => {
  gw = await startTestGateway({ flags: { 'max-connections-per-devbox': String(LIMIT) } });
  const p = await gw.api.policy('p', { allowed_hostnames: ['allowed.test'] });
  await gw.api.devbox(p, ['127.0.0.2']);
});
afterAll(async () => gw?.close());

/** Opens `n` sockets from 127.0.0.2, sends `first` on each, and counts how many are still open after `waitMs`. */
async function flood(port: number, first: Buffer | string, n: number, waitMs: number): Promise<number> {
  const socks: net.Socket[] = [];
  let open = 0;
  for (let i = 0; i < n; i++) {
    const s = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' });
    s.on('error', () => {});
    s.on('connect', () => {
      open++;
      s.once('close', () => open--);
      s.write(first);
    });
    s.resume();
    socks.push(s);
  }
  await new Promise((r) => setTimeout(r, waitMs));
  const still = open;
  for (const s of socks) s.destroy();
  return still;
}

describe('one devbox cannot hold unbounded client sockets', () => {
  it('HTTP proxy: idle keep-alive connections beyond the per-devbox limit are closed', async () => {
    const open = await flood(gw.addr('http-proxy').port, 'GET http://denied.test/ HTTP/1.1\r\nHost: denied.test\r\n\r\n', FLOOD, 600);
    expect(open).toBeLessThanOrEqual(2 * LIMIT);
  });

  it('SOCKS5: stalled handshakes beyond the per-devbox limit are closed', async () => {
    const open = await flood(gw.addr('socks5').port, Buffer.from([5]), FLOOD, 600);
    expect(open).toBeLessThanOrEqual(2 * LIMIT);
  });
});
