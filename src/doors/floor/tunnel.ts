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

/**
 * Connects to exactly `address` (an IP literal: net does no lookup for those) with a time-out.
 * Counts failures in egress_upstream_connect_errors_total. `onSocket` receives the socket
 * before it connects, so a caller can abort it.
 */
export function dial(address: string, port: number, timeoutMs: number, door: Door, onSocket?: (s: net.Socket) => void, socketOptions?: net.SocketConstructorOpts): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    if (net.isIP(address) === 0) {
      upstreamConnectErrors.labels(door, 'EINVAL').inc();
      reject(new DialError('EINVAL', 502));
      return;
    }
    const s = new net.Socket(socketOptions ?? { allowHalfOpen: true });
    onSocket?.(s);
    let settled = false;
    const fail = (err: DialError) => {
      // 'error' is followed by 'close': count and reject once.
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.off('connect', ok);
      s.destroy();
      upstreamConnectErrors.labels(door, err.code).inc();
      reject(err);
    };
    const onError = (e: unknown) => fail(dialError(e));
    const onClose = () => fail(new DialError('ECONNABORTED', 502));
    const ok = () => {
      settled = true;
      clearTimeout(timer);
      s.off('error', onError);
      s.off('close', onClose);
      resolve(s);
    };
    const timer = setTimeout(() => fail(new DialError('ETIMEDOUT', 504)), timeoutMs);
    s.once('error', onError);
    s.once('close', onClose);
    s.once('connect', ok);
    s.connect({ host: address, port, noDelay: true });
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
 * socket instead reads straight into a buffer of ours (net's `onread`), 256 KiB once a
 * read fills a small one, and that buffer is written to the client as is (no copy) and
 * comes back to a shared free list when the write is done. An idle tunnel holds one
 * small buffer.
 */
const SMALL = 16 * 1024;
const BIG = 256 * 1024;
const freeSmall: Buffer[] = [];
const freeBig: Buffer[] = [];
const MAX_FREE_SMALL = 256;
const MAX_FREE_BIG = 32;

function takeBuffer(big: boolean): Buffer {
  if (big) return freeBig.pop() ?? Buffer.allocUnsafeSlow(BIG);
  return freeSmall.pop() ?? Buffer.allocUnsafeSlow(SMALL);
}

function giveBack(b: Buffer): void {
  if (b.length === BIG) {
    if (freeBig.length < MAX_FREE_BIG) freeBig.push(b);
  } else if (freeSmall.length < MAX_FREE_SMALL) freeSmall.push(b);
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
  /** The buffer the upstream socket reads into next (see takeBuffer). */
  private readBuf: Buffer | null = null;
  /** While set (readDownstream), upstream reads go to the door instead of the client. */
  private tap: ((chunk: Buffer | null) => void) | null = null;

  private constructor(private readonly ctx: DoorContext, readonly client: net.Socket, spec: TunnelSpec) {
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
  static open(ctx: DoorContext, client: net.Socket, spec: TunnelSpec): Tunnel | null {
    const t = new Tunnel(ctx, client, spec);
    if (!ctx.tracker.add(t)) return null;
    client.on('error', t.onError);
    client.on('close', t.onClientClose);
    if (client.destroyed) t.finish('client_closed');
    return t;
  }

  get closed(): boolean {
    return this.done;
  }

  /** Dials the checked address; null on success, else the DialError (already counted). */
  async connect(address: string, port = this.port): Promise<DialError | null> {
    if (this.done) return new DialError('ECONNABORTED', 502);
    try {
      const s = await dial(address, port, this.ctx.config.connectTimeoutMs, this.door, (sock) => {
        this.upstream = sock;
        // Not read until startDownstream (the relay has nowhere to put the bytes before).
        sock.pause();
      }, {
        allowHalfOpen: true,
        onread: { buffer: this.nextBuffer, callback: this.onUpstreamData },
      } as net.SocketConstructorOpts);
      if (this.done) {
        s.destroy();
        return new DialError('ECONNABORTED', 502);
      }
      this.connected = true;
      s.on('error', this.onError);
      s.on('close', this.onUpstreamClose);
      return null;
    } catch (e) {
      this.upstream = null;
      return e instanceof DialError ? e : dialError(e);
    }
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
    up.once('end', this.onTapEnd);
    up.resume();
  }

  private readonly onTapEnd = () => {
    const tap = this.tap;
    this.tap = null;
    if (!this.done) tap?.(null);
  };

  /** Starts the destination → client direction only (the door still inspects the client's first bytes). */
  startDownstream(): void {
    const up = this.upstream;
    if (this.done || up === null || this.downstream) return;
    if (this.tap !== null) {
      this.tap = null;
      up.off('end', this.onTapEnd);
    }
    this.downstream = true;
    this.client.setNoDelay(true);
    this.client.setTimeout(this.ctx.config.idleTimeoutMs, this.onIdle);
    up.once('end', this.onUpstreamEnd);
    up.resume();
  }

  /** net's onread buffer generator: called for the first read and after every read. */
  private readonly nextBuffer = (): Buffer => {
    const b = takeBuffer(this.readBuf !== null && this.lastRead >= SMALL);
    this.readBuf = b;
    return b;
  };

  private lastRead = 0;

  /** One upstream read (in our buffer): relay it as is; false pauses the upstream. */
  private readonly onUpstreamData = (n: number, buf: Buffer): boolean => {
    this.lastRead = n;
    const tap = this.tap;
    if (tap !== null) {
      const copy = Buffer.from(buf.subarray(0, n));
      giveBack(buf);
      if (!this.done) tap(copy);
      return true;
    }
    const client = this.client;
    if (this.done || !client.writable) {
      giveBack(buf);
      return true;
    }
    if (client.write(buf.subarray(0, n), () => giveBack(buf))) return true;
    client.once('drain', this.onClientDrain);
    return false;
  };

  private readonly onClientDrain = () => {
    if (!this.done) this.upstream?.resume();
  };

  private readonly onUpstreamEnd = () => {
    if (!this.done && !this.client.writableEnded) this.client.end();
  };

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

  private readonly onError = (e: Error) => {
    this.finish((e as NodeJS.ErrnoException).code ?? 'error');
  };

  private readonly onIdle = () => {
    this.finish('idle_timeout');
  };

  private readonly onClientClose = () => {
    if (!this.connected || this.upstream === null) this.finish('client_closed');
    else this.drainInto(this.upstream);
  };

  private readonly onUpstreamClose = () => {
    this.drainInto(this.client);
  };

  /** One side closed cleanly: let the other flush what it holds (half-close), then done. */
  private drainInto(other: net.Socket): void {
    if (this.done) return;
    if (other.destroyed || other.writableFinished) return this.finish();
    if (!other.writableEnded) other.end();
    other.once('finish', () => this.finish());
    other.setTimeout(this.ctx.config.idleTimeoutMs, this.onIdle);
  }

  private finish(error?: string, farewell?: Buffer | string): void {
    if (this.done) return;
    this.done = true;
    const up = this.upstream;
    const client = this.client;
    this.ctx.tracker.remove(this);
    client.setTimeout(0);
    // Late errors from either socket must not become uncaught.
    client.on('error', noop);
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
      up.on('error', noop);
      up.destroy();
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
