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
import type { DoorContext } from '../floor/context.js';
import { protocolErrors } from '../../metrics.js';
import { parseAuthority } from '../floor/authority.js';
import { PROXY_AUTHENTICATE, endSocket, rawDenial, rawError } from '../floor/denial.js';
import { identify } from '../floor/proxy-auth.js';
import { spliceWithSniCheck } from '../floor/tls-name-rule.js';
import { Tunnel } from '../floor/tunnel.js';

const ESTABLISHED = 'HTTP/1.1 200 Connection Established\r\n\r\n';

/** server.on('connect') handler. */
export function handleConnect(ctx: DoorContext, req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
  return connectTo(ctx, req.url ?? '', req.headers['proxy-authorization'], socket as net.Socket, head);
}

/** A CONNECT request whose head was read: `authority` as sent, its Proxy-Authorization header. */
export async function connectTo(ctx: DoorContext, authority: string, proxyAuthorization: string | undefined, sock: net.Socket, head: Buffer): Promise<void> {
  sock.on('error', () => sock.destroy());
  const target = parseAuthority(authority, null);
  if (target === null) {
    protocolErrors.labels('connect', 'bad_target').inc();
    endSocket(sock, rawError(400, 'CONNECT needs host:port'));
    return;
  }
  const identity = identify(ctx.engine, sock.remoteAddress ?? '', proxyAuthorization);
  if (identity === null) {
    endSocket(sock, rawError(407, 'wrong proxy credentials', PROXY_AUTHENTICATE));
    return;
  }
  const a = ctx.gate.admitNow(identity, target.host, target.port, 'connect');
  const admission = a instanceof Promise ? await a : a;
  if (!admission.ok) {
    endSocket(sock, admission.error === 'denied' ? rawDenial(admission.decision, target.port) : rawError(502, `cannot resolve ${target.host}: ${admission.detail}`));
    return;
  }
  if (sock.destroyed) return;
  const tunnel = Tunnel.open(ctx, sock, { door: 'connect', identity, decision: admission.decision, host: target.host, port: target.port });
  if (tunnel === null) {
    endSocket(sock, rawError(503, 'too many open connections for this devbox'));
    return;
  }
  const err = await tunnel.connect(admission.address);
  if (err) {
    tunnel.close(err.code, rawError(err.status, `upstream ${target.host}:${target.port}: ${err.code}`));
    return;
  }
  sock.write(ESTABLISHED);
  await spliceWithSniCheck(ctx, tunnel, head.length > 0 ? head : null);
}
