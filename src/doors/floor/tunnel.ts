/**
 * "Dial + pipe + track + count bytes", shared by CONNECT, SOCKS5, WebSocket upgrades and
 * the transparent TLS door.
 *
 *   const t = Tunnel.open(ctx, client, { door, identity, decision, host, port });
 *   if (!t) → answer "too many connections" (the devbox is at its limit)
 *   const err = await t.connect(address);   // the address Gate.admit checked; no lookup
 *   if (err) → answer err.status (502/504) in the door's words, then t.close(err.code)
 *   else → answer success, then t.splice(head)
 *
 * A Tunnel is registered with the ConnectionTracker for its whole life (so a policy change
 * can cut it), destroys both sockets on any error or idle time-out, counts bytes once at
 * the end (socket counters, nothing per chunk) and writes one log line via
 * Gate.logConnection.
 */
import net from 'node:net';
import type { DoorContext } from './context.js';

/** What a tunnel uses of the gateway (and the TLS name rule it applies, tls-name-rule.ts). */
export type TunnelContext = DoorContext<'tracker' | 'gate' | 'engine' | 'config', TunnelSetting>;
export type TunnelSetting = 'connectTimeoutMs' | 'idleTimeoutMs' | 'headerTimeoutMs' | 'tlsEch';
import type { Decision, Door } from '../../policy/decision.js';
import type { Identity } from '../../policy/engine.js';
import type { TrackedConnection } from './tracker.js';
import { bytesTotal, upstreamConnectErrors } from '../../metrics.js';

export class DialError extends Error {
  constructor(
    /** errno-style code: ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH, … */
    readonly code: string,
    /** The HTTP status a proxy answers with: 504 for a time-out, else 502. */
    readonly status: 502 | 504,
  ) {
    super(`upstream connect failed: ${code}`);
  }
}

function dialError(e: unknown): DialError {
  const code = (e as NodeJS.ErrnoException)?.code ?? 'ERROR';
  return new DialError(code, code === 'ETIMEDOUT' ? 504 : 502);
}

/** Where a dial in progress reports (kept on the socket: no closure per dial). */
interface Dialing {
  door: Door;
  timer: NodeJS.Timeout | null;
  settled: boolean;
  owner: unknown;
  done: (err: DialError | null, socket: net.Socket | null, owner: unknown) => void;
}

const kDialing = Symbol('dialing');
type DialingSocket = net.Socket & { [kDialing]?: Dialing };

function dialFailed(s: DialingSocket, err: DialError): void {
  const d = s[kDialing];
  // 'error' is followed by 'close': count and report once.
  if (d === undefined || d.settled) return;
  d.settled = true;
  s[kDialing] = undefined;
  if (d.timer !== null) clearTimeout(d.timer);
  s.off('connect', onDialConnect);
  s.off('error', onDialError);
  s.off('close', onDialClose);
  s.destroy();
  upstreamConnectErrors.labels(d.door, err.code).inc();
  d.done(err, null, d.owner);
}

function onDialError(this: DialingSocket, e: unknown): void {
  dialFailed(this, dialError(e));
}

function onDialClose(this: DialingSocket): void {
  dialFailed(this, new DialError('ECONNABORTED', 502));
}

function onDialTimeout(s: DialingSocket): void {
  dialFailed(s, new DialError('ETIMEDOUT', 504));
}

function onDialConnect(this: DialingSocket): void {
  const d = this[kDialing];
  if (d === undefined || d.settled) return;
  d.settled = true;
  this[kDialing] = undefined;
  if (d.timer !== null) clearTimeout(d.timer);
  this.off('error', onDialError);
  this.off('close', onDialClose);
  d.done(null, this, d.owner);
}

/**
 * Connects to exactly `address` (an IP literal: net does no lookup for those) with a time-out,
 * and calls `done(null, socket, owner)` once connected or `done(err, null, owner)` (counted in
 * egress_upstream_connect_errors_total), never synchronously. Returns the socket before it
 * connects (null for an address that is not an IP), so a caller can abort it. `done` and
 * `owner` are handed back instead of a closure: this runs once per tunnel.
 */
export function dialThen<O>(address: string, port: number, timeoutMs: number, door: Door, owner: O, done: (err: DialError | null, socket: net.Socket | null, owner: O) => void, socketOptions?: net.SocketConstructorOpts): net.Socket | null {
  if (net.isIP(address) === 0) {
    upstreamConnectErrors.labels(door, 'EINVAL').inc();
    process.nextTick(done, new DialError('EINVAL', 502), null, owner);
    return null;
  }
  const s: DialingSocket = new net.Socket(socketOptions ?? { allowHalfOpen: true });
  s[kDialing] = { door, timer: setTimeout(onDialTimeout, timeoutMs, s), settled: false, owner, done: done as Dialing['done'] };
  s.once('error', onDialError);
  s.once('close', onDialClose);
  s.once('connect', onDialConnect);
  s.connect({ host: address, port, noDelay: true });
  return s;
}

/**
 * dialThen as a promise: the connected socket, or a rejection with the DialError. `onSocket`
 * receives the socket before it connects, so a caller can abort it.
 */
export function dial(address: string, port: number, timeoutMs: number, door: Door, onSocket?: (s: net.Socket) => void, socketOptions?: net.SocketConstructorOpts): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = dialThen(address, port, timeoutMs, door, null, (err, sock) => (err === null ? resolve(sock!) : reject(err)), socketOptions);
    if (s !== null) onSocket?.(s);
  });
}

export interface TunnelSpec {
  door: Door;
  identity: Identity;
  /** The allowed decision (from Gate.admit). */
  decision: Decision;
  /** The destination as the client named it (re-decided by the tracker on every change). */
  host: string;
  port: number;
}

const noop = () => {};

/** Sees the destination's bytes before they go to the client (the TLS handshake window); cleared when done. */
export interface DownstreamWatch {
  onServerBytes(t: Tunnel, buf: Buffer, n: number): void;
}

const byteCounters = new Map<string, { inc(v: number): void }>();
function bytesCounter(door: Door, direction: 'in' | 'out'): { inc(v: number): void } {
  const key = door + direction;
  let c = byteCounters.get(key);
  if (c === undefined) byteCounters.set(key, (c = bytesTotal.labels(door, direction)));
  return c;
}

/**
 * Read buffers for the destination → client direction. node reads a socket 64 KiB at a
 * time into a fresh buffer and pushes it through the stream machinery; for a bulk download
 * that per-read work, not the copying, is what a relay spends its CPU on. The upstream
 * socket instead reads straight into a buffer of ours (net's `onread`), and that buffer is
 * written to the client as is (no copy) and comes back to a shared free list when the write
 * is done. Sizes grow with the reads: 4 KiB first (an idle tunnel holds one such buffer,
 * and there may be 10,000 idle tunnels), 16 KiB once a read fills that, 256 KiB once a read
 * fills 16 KiB. The buffer a tunnel was going to read into next goes back when it ends.
 */
const TINY = 4 * 1024;
const SMALL = 16 * 1024;
const BIG = 256 * 1024;
const free: Record<number, Buffer[]> = { [TINY]: [], [SMALL]: [], [BIG]: [] };
const MAX_FREE: Record<number, number> = { [TINY]: 1024, [SMALL]: 256, [BIG]: 32 };

function takeBuffer(size: number): Buffer {
  return free[size]!.pop() ?? Buffer.allocUnsafeSlow(size);
}

function giveBack(b: Buffer): void {
  const list = free[b.length];
  if (list !== undefined && list.length < MAX_FREE[b.length]!) list.push(b);
}

/**
 * net's onread buffer generator, shared by every tunnel: net calls it for the first read
 * (inside connect()) and right after each read's callback (onUpstreamData), which leave
 * here the tunnel it is for and the size of the read that just happened.
 */
let nextReadFor: Tunnel | null = null;
let lastRead = 0;
function nextBuffer(): Buffer {
  const b = takeBuffer(lastRead >= SMALL ? BIG : lastRead >= TINY ? SMALL : TINY);
  lastRead = 0;
  if (nextReadFor !== null) nextReadFor.readBuf = b;
  nextReadFor = null;
  return b;
}

/**
 * The tunnel a socket belongs to. Listeners are functions shared by every tunnel (`this` is
 * the socket, the tunnel is found here): a tunnel allocates no closures of its own.
 */
const kTunnel = Symbol('tunnel');
type TunnelSocket = net.Socket & { [kTunnel]?: Tunnel };

function tunnelOf(s: net.Socket): Tunnel | undefined {
  return (s as TunnelSocket)[kTunnel];
}

export class Tunnel implements TrackedConnection {
  readonly identity: Identity;
  readonly host: string;
  readonly port: number;
  readonly door: Door;
  readonly decision: Decision;
  upstream: net.Socket | null = null;
  private readonly started = performance.now();
  private done = false;
  private connected = false;
  /** Destination → client relay started (before that, the paused upstream is not read). */
  private downstream = false;
  /** The client socket has our 'timeout' listener (idle time-out armed at least once). */
  private clientTimed = false;
  /** The buffer the upstream socket reads into next (see nextBuffer); given back when the tunnel ends. */
  readBuf: Buffer | null = null;
  /** While set (readDownstream), upstream reads go to the door instead of the client. */
  private tap: ((chunk: Buffer | null) => void) | null = null;
  /** While set, each destination read is shown to it first (then relayed as usual). */
  downstreamWatch: DownstreamWatch | null = null;
  /** Who is told when the dial ends (connectThen). */
  private onConnected: ((err: DialError | null, t: Tunnel) => void) | null = null;

  private constructor(
    readonly ctx: TunnelContext,
    readonly client: net.Socket,
    spec: TunnelSpec,
  ) {
    this.identity = spec.identity;
    this.host = spec.host;
    this.port = spec.port;
    this.door = spec.door;
    this.decision = spec.decision;
  }

  /**
   * Registers the connection; null when the devbox is at its connection limit (the client
   * socket is left for the caller to answer). From here on the Tunnel owns the client
   * socket: errors and close end the tunnel.
   */
  static open(ctx: TunnelContext, client: net.Socket, spec: TunnelSpec): Tunnel | null {
    const t = new Tunnel(ctx, client, spec);
    if (!ctx.tracker.add(t)) return null;
    (client as TunnelSocket)[kTunnel] = t;
    client.on('error', Tunnel.onSocketError);
    client.on('close', Tunnel.onClientClose);
    if (client.destroyed) t.finish('client_closed');
    return t;
  }

  get closed(): boolean {
    return this.done;
  }

  /** Dials the checked address; null on success, else the DialError (already counted). */
  connect(address: string, port = this.port): Promise<DialError | null> {
    return new Promise((resolve) => this.connectThen(address, port, resolve));
  }

  /** connect() without a promise: `then(null, tunnel)` once connected, else `then(err, tunnel)`; never synchronously. */
  connectThen(address: string, port: number, then: (err: DialError | null, t: Tunnel) => void): void {
    if (this.done || this.onConnected !== null) {
      process.nextTick(then, new DialError('ECONNABORTED', 502), this);
      return;
    }
    this.onConnected = then;
    nextReadFor = this;
    lastRead = 0;
    const s = dialThen(address, port, this.ctx.config.connectTimeoutMs, this.door, this, Tunnel.dialed, {
      allowHalfOpen: true,
      onread: { buffer: nextBuffer, callback: Tunnel.onUpstreamData },
    } as net.SocketConstructorOpts);
    nextReadFor = null;
    if (s === null) return;
    (s as TunnelSocket)[kTunnel] = this;
    this.upstream = s;
    // Not read until startDownstream (the relay has nowhere to put the bytes before).
    s.pause();
  }

  private static dialed(err: DialError | null, s: net.Socket | null, t: Tunnel): void {
    const then = t.onConnected!;
    if (err !== null) {
      t.upstream = null;
      then(err, t);
      return;
    }
    if (t.done) {
      s!.destroy();
      then(new DialError('ECONNABORTED', 502), t);
      return;
    }
    t.connected = true;
    s!.on('error', Tunnel.onSocketError);
    s!.on('close', Tunnel.onUpstreamClose);
    then(null, t);
  }

  /**
   * Reads the destination's first bytes for the door instead of relaying them (an upgrade
   * waits for the origin's answer): `onData` gets a copy of each read, and null once when
   * the destination ends, until the door calls startDownstream (relay from then on; the
   * door writes what it took to the client first) or close. Nothing of the client is read.
   */
  readDownstream(onData: (chunk: Buffer | null) => void): void {
    const up = this.upstream;
    if (this.done || up === null || this.downstream || this.tap !== null) return;
    this.tap = onData;
    up.once('end', Tunnel.onTapEnd);
    up.resume();
  }

  private static onTapEnd(this: net.Socket): void {
    const t = tunnelOf(this);
    if (t === undefined) return;
    const tap = t.tap;
    t.tap = null;
    if (!t.done) tap?.(null);
  }

  /** Starts the destination → client direction only (the door still inspects the client's first bytes). */
  startDownstream(): void {
    const up = this.upstream;
    if (this.done || up === null || this.downstream) return;
    if (this.tap !== null) {
      this.tap = null;
      up.off('end', Tunnel.onTapEnd);
    }
    this.downstream = true;
    const client = this.client;
    client.setNoDelay(true);
    if (!this.clientTimed) {
      this.clientTimed = true;
      client.on('timeout', Tunnel.onIdle);
    }
    client.setTimeout(this.ctx.config.idleTimeoutMs);
    up.once('end', Tunnel.onUpstreamEnd);
    up.resume();
  }

  /** One upstream read (in our buffer): relay it as is; false pauses the upstream. */
  private static onUpstreamData(this: net.Socket, n: number, buf: Buffer): boolean {
    lastRead = n;
    const t = tunnelOf(this);
    if (t !== undefined) {
      nextReadFor = t;
      t.readBuf = null;
    }
    if (t === undefined) {
      giveBack(buf);
      return true;
    }
    const tap = t.tap;
    if (tap !== null) {
      const copy = Buffer.from(buf.subarray(0, n));
      giveBack(buf);
      if (!t.done) tap(copy);
      return true;
    }
    const client = t.client;
    if (t.done || !client.writable) {
      giveBack(buf);
      return true;
    }
    if (t.downstreamWatch !== null) t.downstreamWatch.onServerBytes(t, buf, n);
    if (client.write(buf.subarray(0, n), () => giveBack(buf))) return true;
    client.once('drain', Tunnel.onClientDrain);
    return false;
  }

  private static onClientDrain(this: net.Socket): void {
    const t = tunnelOf(this);
    if (t !== undefined && !t.done) t.upstream?.resume();
  }

  private static onUpstreamEnd(this: net.Socket): void {
    const t = tunnelOf(this);
    if (t !== undefined && !t.done && !t.client.writableEnded) t.client.end();
  }

  /** Starts the client → destination direction, first writing bytes the door already read. */
  startUpstream(head?: Buffer | null): void {
    const up = this.upstream;
    if (this.done || up === null) return;
    if (head && head.length > 0) up.write(head);
    this.client.pipe(up);
  }

  /** Both directions. */
  splice(head?: Buffer | null): void {
    this.startDownstream();
    this.startUpstream(head);
  }

  /**
   * Ends the tunnel now: destroys both sockets (errors, denials after connect, policy cuts).
   * With `farewell`, the client is sent those bytes (a 502, a SOCKS reply, a TLS alert)
   * and closed once they are flushed.
   */
  close(error?: string, farewell?: Buffer | string): void {
    this.finish(error ?? 'closed_by_gateway', farewell);
  }

  /**
   * Ends the tunnel as complete (no error logged): the client is sent `farewell` and closed
   * once it is flushed; the destination is closed now.
   */
  end(farewell: Buffer | string = Buffer.alloc(0)): void {
    this.finish(undefined, farewell);
  }

  private static onSocketError(this: net.Socket, e: Error): void {
    tunnelOf(this)?.finish((e as NodeJS.ErrnoException).code ?? 'error');
  }

  private static onIdle(this: net.Socket): void {
    tunnelOf(this)?.finish('idle_timeout');
  }

  private static onClientClose(this: net.Socket): void {
    const t = tunnelOf(this);
    if (t === undefined) return;
    if (!t.connected || t.upstream === null) t.finish('client_closed');
    else t.drainInto(t.upstream);
  }

  private static onUpstreamClose(this: net.Socket): void {
    const t = tunnelOf(this);
    if (t !== undefined) t.drainInto(t.client);
  }

  private static onDrained(this: net.Socket): void {
    tunnelOf(this)?.finish();
  }

  /** One side closed cleanly: let the other flush what it holds (half-close), then done. */
  private drainInto(other: net.Socket): void {
    if (this.done) return;
    if (other.destroyed || other.writableFinished) return this.finish();
    if (!other.writableEnded) other.end();
    other.once('finish', Tunnel.onDrained);
    if (other !== this.client) other.on('timeout', Tunnel.onIdle);
    else if (!this.clientTimed) {
      this.clientTimed = true;
      other.on('timeout', Tunnel.onIdle);
    }
    other.setTimeout(this.ctx.config.idleTimeoutMs);
  }

  private finish(error?: string, farewell?: Buffer | string): void {
    if (this.done) return;
    this.done = true;
    this.downstreamWatch = null;
    const up = this.upstream;
    const client = this.client;
    this.ctx.tracker.remove(this);
    if (this.clientTimed) client.setTimeout(0);
    // Late errors from either socket must not become uncaught: both keep onSocketError,
    // which does nothing once the tunnel is done.
    if (farewell !== undefined && client.writable) {
      if (up) client.unpipe?.(up);
      client.end(farewell, () => client.destroy());
      client.resume(); // read (and drop) whatever the client still sends, so close is clean
    } else {
      client.destroy();
    }
    let out = 0;
    let inn = 0;
    if (up) {
      // Before it connected, the dial's own error listener is on it (dialThen removes it on settling).
      if (!this.connected) up.on('error', noop);
      up.destroy();
      if (this.readBuf !== null) {
        giveBack(this.readBuf);
        this.readBuf = null;
      }
      if (this.connected) {
        out = up.bytesWritten;
        inn = up.bytesRead;
        if (out > 0) bytesCounter(this.door, 'out').inc(out);
        if (inn > 0) bytesCounter(this.door, 'in').inc(inn);
      }
    }
    this.ctx.gate.logConnection(this.identity, this.door, this.decision, this.port, out, inn, performance.now() - this.started, error);
  }
}
