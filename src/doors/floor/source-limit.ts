/**
 * Client sockets across every TCP door, taken at accept, against one global cap (below the
 * open-file limit) with a fair share per tenant: the devbox the source address belongs to
 * (all its addresses together), else the source address. The per-devbox connection limit
 * (ConnectionTracker) only counts connections that reached a destination, so idle
 * keep-alive sockets and stalled handshakes are capped here.
 *
 * A refused socket is answered in its door's words where a word fits before any request
 * is read (HTTP 503, SOCKS5 "no acceptable method"), then closed.
 */
import type net from 'node:net';
import { protocolErrors } from '../../metrics.js';
import type { FairShare } from './fair-share.js';

const HTTP_503 = (() => {
  const body = '{"error":{"code":"service_unavailable","message":"the gateway is at its connection limit; try again","status":503}}\n';
  return `HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n${body}`;
})();
const SOCKS_NO_METHOD = Buffer.from([0x05, 0xff]);

/** Maps a source address to its tenant key (the devbox id, or `src:` and the address). */
export type TenantOf = (source: string) => string;

export class SourceLimiter {
  constructor(
    readonly share: FairShare,
    private readonly tenantOf: TenantOf,
  ) {}

  /** Counts the socket against its tenant; answers, closes and returns false when over a cap. */
  admit(sock: net.Socket, door: string): boolean {
    const addr = sock.remoteAddress ?? '';
    const source = addr.startsWith('::ffff:') ? addr.slice(7) : addr;
    const tenant = this.tenantOf(source);
    if (!this.share.take(tenant)) {
      protocolErrors.labels(door, 'client_connection_limit').inc();
      refuse(sock, door);
      return false;
    }
    (sock as AdmittedSocket)[kTenant] = { limiter: this, tenant };
    sock.once('close', releaseOnClose);
    return true;
  }
}

const kTenant = Symbol('tenant');
type AdmittedSocket = net.Socket & { [kTenant]?: { limiter: SourceLimiter; tenant: string } };

/** One listener for every socket (no closure per connection): gives the socket's unit back. */
function releaseOnClose(this: AdmittedSocket): void {
  const t = this[kTenant];
  if (t === undefined) return;
  this[kTenant] = undefined;
  t.limiter.share.release(t.tenant);
}

function refuse(sock: net.Socket, door: string): void {
  sock.on('error', () => {});
  if (door === 'http' || door === 'transparent-http' || door === 'connect') {
    sock.end(HTTP_503);
    setTimeout(() => sock.destroy(), 200).unref();
  } else if (door === 'socks5') {
    sock.end(SOCKS_NO_METHOD);
    setTimeout(() => sock.destroy(), 200).unref();
  } else sock.destroy();
}
