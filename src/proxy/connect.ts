/**
 * CONNECT host:port tunnels, and the SNI check every tunnel door shares.
 *
 * After the decision and the upstream dial, the client gets `200 Connection Established`;
 * the destination → client direction starts at once (server-speaks-first protocols work),
 * while the client's first bytes are held until they are classified: a TLS ClientHello
 * must name the CONNECT host (else the tunnel closes, counted as sni_mismatch) and carry no
 * ECH (ech_refused); a first flight that is not TLS makes an opaque tunnel, relayed as is
 * for its life (docs/doors.md, "Tunnels that do not start with TLS", says why).
 */
import type http from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { DoorContext } from '../door.js';
import { type Decision, type Door, denial, strictlyAllowed } from '../policy/decision.js';
import type { Identity } from '../policy/engine.js';
import { normalizeHost } from '../policy/hostname.js';
import { protocolErrors } from '../metrics.js';
import { type ClientHelloInfo, type ClientHelloResult, ALERT_ACCESS_DENIED, ALERT_DECODE_ERROR, ClientHelloReader, tlsAlert } from './clienthello.js';
import { ByteAppender } from '../byte-appender.js';
import { PROXY_AUTHENTICATE, endSocket, rawDenial, rawError } from './denial.js';
import { identify } from './proxy-auth.js';
import { Tunnel } from './tunnel.js';

export interface Authority {
  host: string;
  port: number;
}

/**
 * `host:port`, `[v6]:port` (port required unless defaultPort is given). The host comes back
 * without brackets. Null when malformed.
 */
export function parseAuthority(text: string, defaultPort: number | null): Authority | null {
  if (text.length === 0 || text.length > 1100) return null;
  let host: string;
  let portText: string | null = null;
  if (text.charCodeAt(0) === 91 /* [ */) {
    const close = text.indexOf(']');
    if (close < 0) return null;
    host = text.slice(1, close);
    const rest = text.slice(close + 1);
    if (rest.length > 0) {
      if (rest.charCodeAt(0) !== 58 /* : */) return null;
      portText = rest.slice(1);
    }
    if (!host.includes(':')) return null;
  } else {
    const i = text.lastIndexOf(':');
    if (i >= 0) {
      if (text.indexOf(':') !== i) return null; // bare IPv6 without brackets is ambiguous
      host = text.slice(0, i);
      portText = text.slice(i + 1);
    } else host = text;
  }
  if (host.length === 0) return null;
  for (let i = 0; i < host.length; i++) {
    const c = host.charCodeAt(i);
    if (c <= 32 || c === 127 || c === 64 /* @ */ || c === 47 /* / */ || c === 92 /* \ */ || c === 63 /* ? */ || c === 35 /* # */) return null;
  }
  let port: number;
  if (portText === null || portText === '') {
    if (defaultPort === null) return null;
    port = defaultPort;
  } else {
    if (!/^\d{1,5}$/.test(portText)) return null;
    port = Number(portText);
  }
  if (port < 1 || port > 65535) return null;
  return { host, port };
}

/**
 * May a ClientHello naming `sni` go through a tunnel decided for `decision`?
 * - no SNI: yes (the destination itself was decided);
 * - a name destination: the SNI must be that name;
 * - an IP destination (allowed by CIDR or DNS-learned): the SNI name must itself be allowed.
 */
export function sniAllowed(ctx: DoorContext, identity: Identity, decision: Decision, sni: string | null, port: number, door: Door): boolean {
  if (sni === null) return true;
  const n = normalizeHost(sni);
  if (n.kind !== 'name') return false;
  if (decision.hostKind === 'name') return n.name === decision.host;
  // Admitted by the policy itself: a report-only policy does not waive an SNI that names another host.
  return strictlyAllowed(ctx.engine.decide(identity, n.name, port, door));
}

export type FirstFlight = { buf: Buffer | null; result: ClientHelloResult | 'closed' | 'timeout' };

/**
 * Reads the client's first bytes until they are classified (not TLS, or a whole
 * ClientHello), at most `timeoutMs` after the first byte (or from now, with timeFromNow). The socket is left paused with no
 * listeners of ours; the bytes read are returned for relaying.
 */
export function readFirstFlight(socket: net.Socket, head: Buffer | null, timeoutMs: number, timeFromNow = false): Promise<FirstFlight> {
  let buf: Buffer | null = head !== null && head.length > 0 ? head : null;
  const reader = new ClientHelloReader();
  if (buf !== null) {
    const r = reader.read(buf);
    if (r !== 'incomplete') return Promise.resolve({ buf, result: r });
  }
  // The client may have ended while the door decided ('end' is emitted even when paused).
  if (socket.readableEnded) return Promise.resolve({ buf, result: 'closed' });
  const appender = new ByteAppender();
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | null = null;
    const done = (result: FirstFlight['result']) => {
      if (timer !== null) clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.pause();
      resolve({ buf, result });
    };
    const onData = (d: Buffer) => {
      buf = appender.append(buf, d);
      const r = reader.read(buf);
      if (r !== 'incomplete') return done(r);
      timer ??= setTimeout(() => done('timeout'), timeoutMs);
    };
    const onEnd = () => done('closed');
    if (buf !== null || timeFromNow) timer = setTimeout(() => done('timeout'), timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.resume();
  });
}

/**
 * After the success reply of a tunnel door (CONNECT 200, SOCKS 0x00): relays the destination
 * at once, holds the client's first bytes until classified, enforces the SNI rule, then
 * relays both ways. Used by CONNECT and SOCKS5. `head` = bytes the client already sent.
 * A first flight that is not TLS is relayed, and nothing after it is inspected.
 */
export async function spliceWithSniCheck(ctx: DoorContext, tunnel: Tunnel, head: Buffer | null): Promise<void> {
  tunnel.startDownstream();
  const { buf, result } = await readFirstFlight(tunnel.client, head, ctx.config.headerTimeoutMs);
  if (tunnel.closed) return;
  if (result === 'not_tls') {
    tunnel.startUpstream(buf);
    return;
  }
  if (result === 'closed') {
    // The client ended (or closed) before a whole first flight; pass on what there was.
    if (buf !== null && buf.length > 0 && buf[0] !== 0x16) {
      tunnel.upstream?.end(buf);
      return;
    }
    if (buf === null) {
      tunnel.upstream?.end();
      return;
    }
    protocolErrors.labels(tunnel.door, 'client_hello').inc();
    tunnel.close('incomplete_client_hello');
    return;
  }
  if (result === 'timeout' || result === 'malformed' || result === 'incomplete') {
    protocolErrors.labels(tunnel.door, 'client_hello').inc();
    tunnel.close(result === 'timeout' ? 'client_hello_timeout' : 'malformed_client_hello', tlsAlert(ALERT_DECODE_ERROR));
    return;
  }
  const refusal = helloRefusal(ctx, tunnel.identity, tunnel.decision, result, tunnel.port, tunnel.door);
  if (refusal === null) {
    tunnel.startUpstream(buf);
    return;
  }
  refuseHello(ctx, tunnel.identity, tunnel.door, tunnel.port, refusal, result, tunnel.decision);
  tunnel.close(refusal, tlsAlert(ALERT_ACCESS_DENIED));
}

export type HelloRefusal = 'ech_refused' | 'sni_mismatch';

/**
 * The rule every TLS path applies to a ClientHello once its destination was decided:
 * ECH (encrypted_client_hello or ech_outer_extensions) is refused, as its real name is
 * hidden; then the SNI rule of sniAllowed. Null: the hello may pass.
 */
export function helloRefusal(ctx: DoorContext, identity: Identity, decision: Decision, hello: ClientHelloInfo, port: number, door: Door): HelloRefusal | null {
  if (hello.ech) return 'ech_refused';
  return sniAllowed(ctx, identity, decision, hello.sni, port, door) ? null : 'sni_mismatch';
}

/** Counts and logs a refused ClientHello (the door then sends the access_denied alert). */
export function refuseHello(ctx: DoorContext, identity: Identity, door: Door, port: number, reason: HelloRefusal, hello: ClientHelloInfo, base?: Decision): void {
  ctx.gate.record(identity, door, denial(reason, hello.sni ?? '', base, 'name'), port);
  protocolErrors.labels(door, reason).inc();
}

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
