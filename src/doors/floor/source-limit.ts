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

/** A whole 503 response naming the limit that refused the socket (built once per limiter). */
function http503(message: string): string {
  const body = `${JSON.stringify({ error: { code: 'service_unavailable', message, status: 503 } })}\n`;
  return `HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n${body}`;
}
const SOCKS_NO_METHOD = Buffer.from([0x05, 0xff]);

/** Maps a source address to its tenant key (the devbox id, or `src:` and the address). */
export type TenantOf = (source: string) => string;

export class SourceLimiter {
  /** The 503 for each way a socket is refused: the gateway's cap, or the tenant's share. */
  private readonly answers: Record<'global' | 'tenant', string>;

  constructor(
    readonly share: FairShare,
    private readonly tenantOf: TenantOf,
  ) {
    this.answers = {
      global: http503(`the gateway is at its client connection limit: ${share.cap} (--max-client-connections, derived from the open-file limit when 0); try again`),
      tenant: http503(`this client holds its share of the gateway's client connections: ${share.perTenant} (twice --max-connections-per-devbox, less while the gateway is crowded); close idle connections or try again`),
    };
  }

  /** Counts the socket against its tenant; answers, closes and returns false when over a cap. */
  admit(sock: net.Socket, door: string): boolean {
    const addr = sock.remoteAddress ?? '';
    const source = addr.startsWith('::ffff:') ? addr.slice(7) : addr;
    const tenant = this.tenantOf(source);
    if (!this.share.take(tenant)) {
      protocolErrors.labels(door, 'client_connection_limit').inc();
      refuse(sock, door, this.answers[this.share.lastRefusal]);
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

function refuse(sock: net.Socket, door: string, http: string): void {
  sock.on('error', () => {});
  if (door === 'http' || door === 'transparent-http' || door === 'connect') {
    sock.end(http);
    setTimeout(() => sock.destroy(), 200).unref();
  } else if (door === 'socks5') {
    sock.end(SOCKS_NO_METHOD);
    setTimeout(() => sock.destroy(), 200).unref();
  } else sock.destroy();
}
