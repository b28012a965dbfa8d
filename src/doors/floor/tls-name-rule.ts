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
import { protocolErrors, tlsEchTotal } from '../../metrics.js';
import { type ClientHelloInfo, type ClientHelloResult, ALERT_ACCESS_DENIED, ALERT_DECODE_ERROR, ClientHelloReader, tlsAlert } from './clienthello.js';
import { ByteAppender } from '../../byte-appender.js';
import type { DownstreamWatch, Tunnel } from './tunnel.js';
import { ClientHelloWatch, ServerHelloWatch } from './handshake-window.js';

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
 * relays both ways, judging every further ClientHello until the server's real ServerHello
 * (the handshake window). Used by CONNECT and SOCKS5. `head` = bytes the client already sent.
 * A first flight that is not TLS is relayed, and nothing after it is inspected.
 */
export function spliceWithSniCheck(tunnel: Tunnel, head: Buffer | null): void {
  // The server's bytes are watched from the first: a server that speaks first is no TLS server.
  const w = new HandshakeWindow(tunnel);
  tunnel.downstreamWatch = w;
  tunnel.startDownstream();
  readFirstFlightThen(tunnel.client, head, tunnel.ctx.config.headerTimeoutMs, false, afterFirstFlight, w);
}

function afterFirstFlight({ buf, result }: FirstFlight, w: HandshakeWindow): void {
  const tunnel = w.tunnel;
  if (tunnel.closed) return;
  if (typeof result !== 'string') {
    if (result.ech) tlsEchTotal.labels(tunnel.door).inc();
    const refusal = helloRefusal(tunnel.ctx, tunnel.identity, tunnel.decision, result, tunnel.port, tunnel.door);
    if (refusal === null) {
      w.begin(buf!, result);
      return;
    }
    refuseHello(tunnel.ctx, tunnel.identity, tunnel.door, tunnel.port, refusal, result, tunnel.decision);
    tunnel.close(refusal, tlsAlert(ALERT_ACCESS_DENIED));
    return;
  }
  w.stopWatchingServer();
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
  protocolErrors.labels(tunnel.door, 'client_hello').inc();
  tunnel.close(result === 'timeout' ? 'client_hello_timeout' : 'malformed_client_hello', tlsAlert(ALERT_DECODE_ERROR));
}

/**
 * Transparent TLS: the first hello passed the door's own checks (its SNI decided the
 * destination); relay it and judge the rest of the handshake window like the tunnel doors.
 */
export function spliceJudged(tunnel: Tunnel, buf: Buffer, first: ClientHelloInfo): void {
  const w = new HandshakeWindow(tunnel);
  tunnel.downstreamWatch = w;
  tunnel.startDownstream();
  w.begin(buf, first);
}

const kWindow = Symbol('handshake-window');
type WindowSocket = net.Socket & { [kWindow]?: HandshakeWindow };

/**
 * One tunnel's handshake window (handshake-window.ts has the readers): the client's bytes
 * after its first hello are read here instead of piped, relayed as soon as they are judged,
 * until the server's real ServerHello ends the window; then the tunnel is a plain splice.
 */
class HandshakeWindow implements DownstreamWatch {
  private readonly server = new ServerHelloWatch();
  private serverDone = false;
  private clientWatch: ClientHelloWatch | null = null;
  private first: ClientHelloInfo | null = null;
  /** Client bytes walked but not yet relayed (those of a hello still being read). */
  private held: Buffer[] = [];
  /** Client stream offset (after hello 1) of the first byte not yet relayed. */
  private sent = 0;
  /** The last further hello judged (named in a refusal's log line). */
  private last: ClientHelloInfo | null = null;
  /** Runs while a further hello is partly read. */
  private timer: NodeJS.Timeout | null = null;

  constructor(readonly tunnel: Tunnel) {}

  onServerBytes(t: Tunnel, buf: Buffer, n: number): void {
    if (this.server.push(buf, 0, n) === null) return;
    this.stopWatchingServer();
    // Before hello 1 is judged, the client side has not started: afterFirstFlight sees serverDone.
    if (this.clientWatch !== null && !t.closed) this.end();
  }

  stopWatchingServer(): void {
    this.serverDone = true;
    if (this.tunnel.downstreamWatch === this) this.tunnel.downstreamWatch = null;
  }

  /** Hello 1 (at the start of `buf`) passed: relay it, then judge the client's further bytes. */
  begin(buf: Buffer, first: ClientHelloInfo): void {
    const tunnel = this.tunnel;
    if (this.serverDone) {
      tunnel.startUpstream(buf);
      return;
    }
    this.first = first;
    this.clientWatch = new ClientHelloWatch((h) => this.judge(h));
    const up = tunnel.upstream;
    if (up === null) return;
    up.write(buf.subarray(0, first.length));
    const c = tunnel.client as WindowSocket;
    c[kWindow] = this;
    c.on('data', HandshakeWindow.onClientData);
    c.once('end', HandshakeWindow.onClientEnd);
    c.resume();
    // Bytes sent right behind hello 1 (a pipelined hello 2, early data) are judged the same way.
    if (buf.length > first.length && !this.take(buf.subarray(first.length))) return;
    // The client may have ended while its first flight was judged ('end' is emitted even when paused).
    if (c.readableEnded) HandshakeWindow.onClientEnd.call(c);
  }

  private judge(h: ClientHelloInfo): HelloRefusal | null {
    const first = this.first!;
    const t = this.tunnel;
    this.last = h;
    if (h.ech) tlsEchTotal.labels(t.door).inc();
    // RFC 8446 §4.1.2: the second hello repeats the first but for the key share, cookie, PSK, early data and padding.
    if (h.sni !== first.sni) return 'sni_mismatch';
    if (h.ech && !first.ech) return 'ech_refused';
    return helloRefusal(t.ctx, t.identity, t.decision, h, t.port, t.door);
  }

  /** Walks client bytes, relays what is judged; false when the tunnel was closed. */
  private take(chunk: Buffer): boolean {
    const cw = this.clientWatch!;
    const t = this.tunnel;
    const r = cw.push(chunk);
    if (r !== null) {
      this.refuse(r);
      return false;
    }
    this.held.push(chunk);
    const judged = cw.judged;
    if (judged > this.sent) this.relay(judged - this.sent);
    // A hello being read is held at most --header-timeout-ms, as the first one is.
    if (cw.midMessage) this.timer ??= setTimeout(HandshakeWindow.onHelloTimeout, t.ctx.config.headerTimeoutMs, this);
    else if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    return !t.closed;
  }

  private static onHelloTimeout(w: HandshakeWindow): void {
    w.timer = null;
    if (w.clientWatch !== null && !w.tunnel.closed) w.refuse('client_hello_timeout');
  }

  /** Relays the first `n` held bytes. */
  private relay(n: number): void {
    const up = this.tunnel.upstream;
    let left = n;
    let i = 0;
    while (left > 0 && i < this.held.length) {
      const c = this.held[i]!;
      if (c.length <= left) {
        up?.write(c);
        left -= c.length;
        i++;
      } else {
        up?.write(c.subarray(0, left));
        this.held[i] = c.subarray(left);
        left = 0;
      }
    }
    this.held = i === 0 ? this.held : this.held.slice(i);
    this.sent += n;
    if (up?.writableNeedDrain && (up as WindowSocket)[kWindow] !== this) {
      this.tunnel.client.pause();
      (up as WindowSocket)[kWindow] = this;
      up.once('drain', HandshakeWindow.onUpstreamDrain);
    }
  }

  private refuse(reason: string): void {
    const t = this.tunnel;
    this.detach();
    if (reason === 'sni_mismatch' || reason === 'ech_refused') {
      refuseHello(t.ctx, t.identity, t.door, t.port, reason, this.last ?? { sni: null, ech: false, length: 0 }, t.decision);
      t.close(`retry_${reason}`, tlsAlert(ALERT_ACCESS_DENIED));
      return;
    }
    protocolErrors.labels(t.door, 'client_hello').inc();
    t.close(`retry_${reason}`, tlsAlert(ALERT_DECODE_ERROR));
  }

  /** The server's real ServerHello (or a server that is no TLS server): relay what is held, then a plain splice. */
  private end(): void {
    const t = this.tunnel;
    this.detach();
    const rest = this.held.length > 0 ? Buffer.concat(this.held) : null;
    this.held = [];
    t.startUpstream(rest);
  }

  private detach(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const c = this.tunnel.client as WindowSocket;
    if (c[kWindow] === this) {
      c[kWindow] = undefined;
      c.off('data', HandshakeWindow.onClientData);
      c.off('end', HandshakeWindow.onClientEnd);
    }
    this.clientWatch = null;
    this.stopWatchingServer();
  }

  private static onClientData(this: WindowSocket, d: Buffer): void {
    const w = this[kWindow];
    if (w === undefined) return;
    if (w.tunnel.closed) return w.detach();
    w.take(d);
  }

  private static onClientEnd(this: WindowSocket): void {
    const w = this[kWindow];
    if (w === undefined) return;
    // Bytes of an unjudged hello are dropped with the client's end.
    w.held = [];
    w.detach();
    w.tunnel.upstream?.end();
  }

  private static onUpstreamDrain(this: WindowSocket): void {
    const w = this[kWindow];
    this[kWindow] = undefined;
    if (w !== undefined && w.clientWatch !== null && !w.tunnel.closed) w.tunnel.client.resume();
  }
}

export type HelloRefusal = 'ech_refused' | 'sni_mismatch';

/**
 * The rule every TLS path applies to a ClientHello once its destination was decided: with
 * `--tls-ech refuse`, a hello with ECH is refused (its real name may be hidden); by default
 * it is judged by its outer SNI like any other. Then the SNI rule of sniAllowed. Null: the
 * hello may pass.
 */
export function helloRefusal(ctx: DoorContext<'engine' | 'config', 'tlsEch'>, identity: Identity, decision: Decision, hello: ClientHelloInfo, port: number, door: Door): HelloRefusal | null {
  if (hello.ech && ctx.config.tlsEch === 'refuse') return 'ech_refused';
  return sniAllowed(ctx, identity, decision, hello.sni, port, door) ? null : 'sni_mismatch';
}

/** Counts and logs a refused ClientHello (the door then sends the access_denied alert). */
export function refuseHello(ctx: DoorContext<'gate'>, identity: Identity, door: Door, port: number, reason: HelloRefusal, hello: ClientHelloInfo, base?: Decision): void {
  ctx.gate.record(identity, door, denial(reason, hello.sni ?? '', base, 'name'), port);
  protocolErrors.labels(door, reason).inc();
}
