/**
 * The name rule every TLS path applies (CONNECT, SOCKS5, transparent TLS): the client's first
 * flight is held until it is classified; a TLS ClientHello must name the decided host (or an
 * allowed one, for an IP destination) and carry no ECH. A first flight that is not TLS makes an
 * opaque tunnel, relayed as is for its life (docs/doors.md, "Tunnels that do not start with TLS").
 */
import type net from 'node:net';
import type { DoorContext } from './context.js';
import { type Decision, type Door, denial, strictlyAllowed } from '../../policy/decision.js';
import type { Identity } from '../../policy/engine.js';
import { normalizeHost } from '../../policy/hostname.js';
import { protocolErrors } from '../../metrics.js';
import { type ClientHelloInfo, type ClientHelloResult, ALERT_ACCESS_DENIED, ALERT_DECODE_ERROR, ClientHelloReader, tlsAlert } from './clienthello.js';
import { ByteAppender } from '../../byte-appender.js';
import type { Tunnel } from './tunnel.js';

/**
 * May a ClientHello naming `sni` go through a tunnel decided for `decision`?
 * - no SNI: yes (the destination itself was decided);
 * - a name destination: the SNI must be that name;
 * - an IP destination (allowed by CIDR or DNS-learned): the SNI name must itself be allowed.
 */
export function sniAllowed(ctx: DoorContext<'engine'>, identity: Identity, decision: Decision, sni: string | null, port: number, door: Door): boolean {
  if (sni === null) return true;
  const n = normalizeHost(sni);
  if (n.kind !== 'name') return false;
  if (decision.hostKind === 'name') return n.name === decision.host;
  // Admitted by the policy itself: a report-only policy does not waive an SNI that names another host.
  return strictlyAllowed(ctx.engine.decide(identity, n.name, port));
}

export type FirstFlight = { buf: Buffer | null; result: ClientHelloResult | 'closed' | 'timeout' };

/**
 * Reads the client's first bytes until they are classified (not TLS, or a whole
 * ClientHello), at most `timeoutMs` after the first byte (or from now, with timeFromNow). The socket is left paused with no
 * listeners of ours; the bytes read are returned for relaying.
 */
export function readFirstFlight(socket: net.Socket, head: Buffer | null, timeoutMs: number, timeFromNow = false): Promise<FirstFlight> {
  return new Promise((resolve) => readFirstFlightThen(socket, head, timeoutMs, timeFromNow, resolve, null));
}

/**
 * readFirstFlight without a promise or closures (it runs once per tunnel): `then(flight, arg)`
 * is called once, synchronously when `head` (or an ended client) already decides it.
 */
export function readFirstFlightThen<A>(socket: net.Socket, head: Buffer | null, timeoutMs: number, timeFromNow: boolean, then: (f: FirstFlight, arg: A) => void, arg: A): void {
  const buf: Buffer | null = head !== null && head.length > 0 ? head : null;
  let reader: ClientHelloReader | null = null;
  if (buf !== null) {
    reader = new ClientHelloReader();
    const r = reader.read(buf);
    if (r !== 'incomplete') return then({ buf, result: r }, arg);
  }
  // The client may have ended while the door decided ('end' is emitted even when paused).
  if (socket.readableEnded) return then({ buf, result: 'closed' }, arg);
  const f = new FlightRead(socket, buf, reader, timeoutMs, then as FlightRead['then'], arg);
  if (buf !== null || timeFromNow) f.timer = setTimeout(FlightRead.onTimeout, timeoutMs, f);
  (socket as FlightSocket)[kFlight] = f;
  socket.on('data', FlightRead.onData);
  socket.once('end', FlightRead.onEnd);
  socket.once('close', FlightRead.onEnd);
  socket.resume();
}

const kFlight = Symbol('first-flight');
type FlightSocket = net.Socket & { [kFlight]?: FlightRead };

/** A first flight being read (its listeners are shared; `this` is the socket). */
class FlightRead {
  timer: NodeJS.Timeout | null = null;
  private appender: ByteAppender | null = null;

  constructor(
    readonly socket: net.Socket,
    private buf: Buffer | null,
    private reader: ClientHelloReader | null,
    private readonly timeoutMs: number,
    readonly then: (f: FirstFlight, arg: unknown) => void,
    readonly arg: unknown,
  ) {}

  done(result: FirstFlight['result']): void {
    const s = this.socket as FlightSocket;
    if (s[kFlight] !== this) return;
    s[kFlight] = undefined;
    if (this.timer !== null) clearTimeout(this.timer);
    s.off('data', FlightRead.onData);
    s.off('end', FlightRead.onEnd);
    s.off('close', FlightRead.onEnd);
    s.pause();
    this.then({ buf: this.buf, result }, this.arg);
  }

  static onData(this: FlightSocket, d: Buffer): void {
    const f = this[kFlight];
    if (f === undefined) return;
    f.buf = (f.appender ??= new ByteAppender()).append(f.buf, d);
    const r = (f.reader ??= new ClientHelloReader()).read(f.buf);
    if (r !== 'incomplete') return f.done(r);
    f.timer ??= setTimeout(FlightRead.onTimeout, f.timeoutMs, f);
  }

  static onEnd(this: FlightSocket): void {
    this[kFlight]?.done('closed');
  }

  static onTimeout(f: FlightRead): void {
    f.done('timeout');
  }
}

/**
 * After the success reply of a tunnel door (CONNECT 200, SOCKS 0x00): relays the destination
 * at once, holds the client's first bytes until classified, enforces the SNI rule, then
 * relays both ways. Used by CONNECT and SOCKS5. `head` = bytes the client already sent.
 * A first flight that is not TLS is relayed, and nothing after it is inspected.
 */
export function spliceWithSniCheck(tunnel: Tunnel, head: Buffer | null): void {
  tunnel.startDownstream();
  readFirstFlightThen(tunnel.client, head, tunnel.ctx.config.headerTimeoutMs, false, afterFirstFlight, tunnel);
}

function afterFirstFlight({ buf, result }: FirstFlight, tunnel: Tunnel): void {
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
  const ctx = tunnel.ctx;
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
export function helloRefusal(ctx: DoorContext<'engine'>, identity: Identity, decision: Decision, hello: ClientHelloInfo, port: number, door: Door): HelloRefusal | null {
  if (hello.ech) return 'ech_refused';
  return sniAllowed(ctx, identity, decision, hello.sni, port, door) ? null : 'sni_mismatch';
}

/** Counts and logs a refused ClientHello (the door then sends the access_denied alert). */
export function refuseHello(ctx: DoorContext<'gate'>, identity: Identity, door: Door, port: number, reason: HelloRefusal, hello: ClientHelloInfo, base?: Decision): void {
  ctx.gate.record(identity, door, denial(reason, hello.sni ?? '', base, 'name'), port);
  protocolErrors.labels(door, reason).inc();
}
