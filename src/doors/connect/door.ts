/**
 * CONNECT host:port tunnels (the HTTP proxy's listener hands CONNECT requests here).
 *
 * After the decision and the upstream dial, the client gets `200 Connection Established`;
 * the destination → client direction starts at once (server-speaks-first protocols work),
 * while the client's first bytes are held until they are classified by the TLS name rule
 * (../floor/tls-name-rule.ts).
 */
import type http from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { protocolErrors } from '../../metrics.js';
import { parseAuthority } from '../floor/authority.js';
import { PROXY_AUTHENTICATE, endSocket, rawDenial, rawError } from '../floor/denial.js';
import { identify } from '../floor/proxy-auth.js';
import { spliceWithSniCheck } from '../floor/tls-name-rule.js';
import { type DialError, Tunnel, type TunnelContext } from '../floor/tunnel.js';
import type { Admission } from '../floor/gate.js';
import type { Identity } from '../../policy/engine.js';

const ESTABLISHED = Buffer.from('HTTP/1.1 200 Connection Established\r\n\r\n', 'latin1');

/** server.on('connect') handler. */
export function handleConnect(ctx: TunnelContext, req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
  return connectTo(ctx, req.url ?? '', req.headers['proxy-authorization'], socket as net.Socket, head);
}

function destroyOnError(this: net.Socket): void {
  this.destroy();
}

const DONE = Promise.resolve();

/**
 * A CONNECT request whose head was read: `authority` as sent, its Proxy-Authorization header.
 * Runs once per tunnel, so the common path (a cached or literal destination) is callbacks
 * without a promise; the promise returned settles when the request is handed on (a throw
 * rejects it).
 */
export function connectTo(ctx: TunnelContext, authority: string, proxyAuthorization: string | undefined, sock: net.Socket, head: Buffer): Promise<void> {
  try {
    sock.on('error', destroyOnError);
    const target = parseAuthority(authority, null);
    if (target === null) {
      protocolErrors.labels('connect', 'bad_target').inc();
      endSocket(sock, rawError(400, 'CONNECT needs host:port'));
      return DONE;
    }
    const identity = identify(ctx.engine, sock.remoteAddress ?? '', proxyAuthorization);
    if (identity === null) {
      endSocket(sock, rawError(407, 'wrong proxy credentials', PROXY_AUTHENTICATE));
      return DONE;
    }
    const a = ctx.gate.admitNow(identity, target.host, target.port, 'connect');
    if (a instanceof Promise) return a.then((admission) => admitted(ctx, sock, head, identity, target.host, target.port, admission));
    admitted(ctx, sock, head, identity, target.host, target.port, a);
    return DONE;
  } catch (e) {
    return Promise.reject(e);
  }
}

function admitted(ctx: TunnelContext, sock: net.Socket, head: Buffer, identity: Identity, host: string, port: number, admission: Admission): void {
  if (!admission.ok) {
    endSocket(sock, admission.error === 'denied' ? rawDenial(admission.decision, port) : rawError(502, `cannot resolve ${host}: ${admission.detail}`));
    return;
  }
  if (sock.destroyed) return;
  const tunnel = Tunnel.open(ctx, sock, { door: 'connect', identity, decision: admission.decision, host, port });
  if (tunnel === null) {
    endSocket(sock, rawError(503, 'too many open connections for this devbox'));
    return;
  }
  if (head.length > 0) heads.set(tunnel, head);
  tunnel.connectThen(admission.address, port, connected);
}

/** Bytes the client sent after its CONNECT head, until the tunnel is spliced (rare: most clients wait for the 200). */
const heads = new WeakMap<Tunnel, Buffer>();

function connected(err: DialError | null, tunnel: Tunnel): void {
  const head = heads.get(tunnel) ?? null;
  if (head !== null) heads.delete(tunnel);
  if (err) {
    tunnel.close(err.code, rawError(err.status, `upstream ${tunnel.host}:${tunnel.port}: ${err.code}`));
    return;
  }
  tunnel.client.write(ESTABLISHED);
  spliceWithSniCheck(tunnel, head);
}
