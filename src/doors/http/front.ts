/**
 * The HTTP doors' front (proxy and transparent): it reads each request head off the client socket and
 * handles the common requests itself, without node:http's per-request objects and streams,
 * which cost more than everything else on the hot path together:
 * - `CONNECT host:port` → the CONNECT door (src/doors/connect/door.ts);
 * - body-less requests (GET, HEAD, OPTIONS, DELETE over HTTP/1.1; absolute-form on the
 *   proxy, origin-form with a Host header on the transparent door) → decided,
 *   then handed to the origin side (origin.ts), which writes it to a pooled keep-alive
 *   connection to the checked address and relays the origin's response as it comes.
 * Anything else (a request body, an upgrade, HTTP/1.0, an unusual method, a head this
 * strict reading does not accept, an oversized head) is handed, with the connection and the
 * bytes read so far, to the node:http server behind the front (door.ts), which answers
 * it. Same decisions, denials, limits, metrics and log lines either way: both paths
 * share the core in flight.ts.
 */
import type net from 'node:net';
import type { Door } from '../../policy/decision.js';
import type { Identity } from '../../policy/engine.js';
import type { Admission } from '../floor/gate.js';
import { protocolErrors } from '../../metrics.js';
import { connectTo } from '../connect/door.js';
import { DENIED_REASON_HEADER, PROXY_AUTHENTICATE, denialBody, errorBody, rawError, rawResponse } from '../floor/denial.js';
import { type RequestHead, blankSearched, parseRequestHead } from './framing.js';
import { ByteAppender } from '../../byte-appender.js';
import { HOST_MISMATCH, denyHostMismatch, resolveRequestTarget } from './target.js';
import { identify } from '../floor/proxy-auth.js';
import type { UpstreamPool } from '../floor/upstream-pool.js';
import { HttpCore, type HttpContext, type Refusal, TOO_MANY, admissionRefusal } from './flight.js';
import { type ClientSide, OriginSide, newExchange } from './origin.js';

let dateSecond = 0;
let dateText = '';
function httpDate(): string {
  const now = Date.now();
  const s = Math.floor(now / 1000);
  if (s !== dateSecond) {
    dateSecond = s;
    dateText = new Date(now).toUTCString();
  }
  return dateText;
}

export class HttpFront {
  readonly pool: UpstreamPool;
  readonly core: HttpCore;
  readonly keepAliveMs: number;
  /** Shutting down: every answer says Connection: close and ends its connection. */
  draining = false;
  private readonly conns = new Set<FrontConnection>();

  constructor(
    readonly ctx: HttpContext,
    readonly door: Door,
    /** Gives a connection (its read bytes unshifted) to the node:http server. */
    readonly handOver: (socket: net.Socket) => void,
    /** Proxy mode (absolute-form, CONNECT, proxy credentials); else transparent (origin-form, Host header). */
    readonly proxy: boolean,
    /** Transparent mode: the port requests go to. */
    readonly originPort: () => number,
  ) {
    this.keepAliveMs = Math.min(ctx.config.idleTimeoutMs, 120_000);
    this.pool = ctx.upstreamPool;
    this.core = new HttpCore(ctx, door);
  }

  accept(socket: net.Socket): void {
    const c = new FrontConnection(this, socket);
    this.conns.add(c);
  }

  release(c: FrontConnection): void {
    this.conns.delete(c);
  }

  /** Closes connections waiting for a next request (shutdown). */
  closeIdle(): void {
    this.draining = true;
    for (const c of this.conns) c.closeIfIdle();
  }

  close(): void {
    this.pool.close();
  }
}

/**
 * Where a client connection is: reading its next request head, waiting for the decision on
 * one (a DNS answer; its next bytes wait too), or forwarding one (origin.ts has it).
 */
type ConnectionState = 'reading' | 'deciding' | 'forwarding';

/** The client side of one connection: request heads in, the gateway's own answers out. */
class FrontConnection implements ClientSide {
  private buf: Buffer | null = null;
  private readonly bytes = new ByteAppender();
  /** How far the head at the start of `buf` was already searched for its end. */
  private headSearched = 0;
  private headTimer: NodeJS.Timeout | null = null;
  private state: ConnectionState = 'reading';
  /** Made on the first forwarded request. */
  private origin: OriginSide | null = null;
  private gone = false;
  private clientEnded = false;
  private readonly source: string;

  constructor(
    private readonly front: HttpFront,
    readonly socket: net.Socket,
  ) {
    this.source = socket.remoteAddress ?? '';
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('error', this.onClientGone);
    socket.on('close', this.onClientGone);
    // One 'timeout' listener for the connection's life (setTimeout(ms, cb) adds one per call).
    socket.on('timeout', this.onIdle);
    socket.setTimeout(front.keepAliveMs);
    // As node:http does, the first request's head is timed from the connection's start.
    this.headTimer = setTimeout(this.onHeadTimeout, front.ctx.config.headerTimeoutMs);
  }

  // ── client side ──────────────────────────────────────────────────────────────

  private readonly onData = (chunk: Buffer): void => {
    // Closing: whatever the client still sends is read (to see its FIN) and dropped.
    if (this.gone) return;
    this.buf = this.bytes.append(this.buf, chunk);
    if (this.state !== 'reading') {
      // Pipelined bytes wait for the response in flight (bounded: stop reading).
      if (this.buf.length > this.front.ctx.config.maxHeaderBytes) this.socket.pause();
      return;
    }
    this.guarded(() => this.nextRequest());
  };

  /** Runs a step from an event: a bug in it ends this connection (logged), never the process. */
  guarded(step: () => void): void {
    try {
      step();
    } catch (e) {
      this.front.ctx.log.error({ err: e, door: this.front.door }, 'HTTP front failed');
      this.origin?.abort('internal_error');
      this.gone = true;
      this.socket.destroy();
    }
  }

  private readonly onEnd = (): void => {
    this.clientEnded = true;
    // Requests already read are still answered; requestDone ends the connection after them.
    if (this.state === 'reading' && this.buf === null) this.socket.end();
    // A FIN with nothing pipelined after the request in flight: the client gave up on it
    // (curl -m, a killed process). Keeping it would hold the origin request, both sockets and
    // the devbox's connection slot until a time-out.
    else if (this.state !== 'reading' && this.buf === null) this.onClientGone();
  };

  private readonly onClientGone = (): void => {
    this.front.release(this);
    if (this.gone) return;
    this.gone = true;
    this.clearHeadTimer();
    this.origin?.abort('client_closed');
    this.socket.destroy();
  };

  /** Idle between requests for the keep-alive time: close quietly. */
  private readonly onIdle = (): void => {
    if (this.state === 'reading') this.socket.destroy();
  };

  private readonly onHeadTimeout = (): void => {
    this.headTimer = null;
    if (this.state !== 'reading' || this.gone) return;
    protocolErrors.labels(this.front.door, 'header_timeout').inc();
    this.endWith(rawError(408, 'request headers took too long'));
  };

  private clearHeadTimer(): void {
    if (this.headTimer !== null) {
      clearTimeout(this.headTimer);
      this.headTimer = null;
    }
  }

  closeIfIdle(): void {
    if (this.state === 'reading' && this.buf === null) this.socket.destroy();
  }

  /** A tracked request the policy now denies: cut both sides. */
  private readonly cut = (): void => {
    this.origin?.destroyUpstream();
    this.socket.destroy();
  };

  get lastRequest(): boolean {
    return this.clientEnded && this.buf === null;
  }

  settled(): void {
    this.state = 'reading';
  }

  refuse(r: Refusal, port: number, close: boolean): void {
    if (r.status === 403) this.reply(403, denialBody(r.decision, port), [DENIED_REASON_HEADER, r.decision.reason], close);
    else this.reply(r.status, errorBody(r.status, r.message), [], close);
  }

  /** Takes the next request off the buffered bytes, if a whole head is there. */
  private nextRequest(): void {
    const buf = this.buf;
    if (buf === null || this.gone) return;
    const r = parseRequestHead(buf, this.front.ctx.config.maxHeaderBytes, this.headSearched);
    this.headSearched = r === 'incomplete' ? blankSearched(buf) : 0;
    if (r === 'incomplete') {
      if (this.clientEnded) {
        // The client shut its side mid-head: that request can never complete.
        this.endWith('');
        return;
      }
      this.headTimer ??= setTimeout(this.onHeadTimeout, this.front.ctx.config.headerTimeoutMs);
      return;
    }
    this.clearHeadTimer();
    if (r === 'other' || (r.method === 'CONNECT' && !this.front.proxy)) {
      this.leave();
      if (buf.length > 0) this.socket.unshift(buf);
      this.front.handOver(this.socket);
      this.socket.resume();
      return;
    }
    this.buf = buf.length > r.end ? buf.subarray(r.end) : null;
    if (r.method === 'CONNECT') {
      const rest = this.buf ?? Buffer.alloc(0);
      this.buf = null;
      this.leave();
      connectTo(this.front.ctx, r.target, r.proxyAuthorization, this.socket, rest).catch((e: unknown) => {
        this.front.ctx.log.error({ err: e }, 'CONNECT failed');
        this.socket.destroy();
      });
      return;
    }
    this.request(r);
  }

  /** The connection is no longer the front's (node:http or a tunnel takes it). */
  private leave(): void {
    this.gone = true;
    this.socket.pause();
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('error', this.onClientGone);
    this.socket.off('close', this.onClientGone);
    this.socket.off('timeout', this.onIdle);
    this.socket.setTimeout(0);
    this.front.release(this);
  }

  /** One of the front's own answers; the connection stays open unless the client asked otherwise. */
  private reply(status: number, body: string, headers: string[] = [], close = false): void {
    this.socket.write(rawResponse(status, body, headers, `Date: ${httpDate()}\r\n${this.connectionHeader(close)}`));
    this.requestDone(close);
  }

  connectionHeader(close: boolean): string {
    return close || this.front.draining ? 'Connection: close\r\n' : `Connection: keep-alive\r\nKeep-Alive: timeout=${Math.floor(this.front.keepAliveMs / 1000)}\r\n`;
  }

  /**
   * Ends the connection once `response` (and anything written before) is flushed. A
   * refusal's client gets 1 s to read it; after a real response (possibly a long body still
   * draining to a slow reader) only the idle time-out applies.
   */
  private endWith(response: string, refusal = true): void {
    this.gone = true;
    this.clearHeadTimer();
    this.socket.end(response, () => this.socket.destroy());
    if (!refusal) return;
    const t = setTimeout(() => this.socket.destroy(), 1000);
    this.socket.once('close', () => clearTimeout(t));
  }

  /** After a response: close if asked to, else read the next request. */
  requestDone(close: boolean): void {
    if (this.gone) return;
    if (close || this.front.draining || (this.clientEnded && this.buf === null)) {
      this.endWith('', false);
      return;
    }
    this.socket.setTimeout(this.front.keepAliveMs);
    if (this.socket.writableNeedDrain) {
      // A client that sends requests without reading the answers waits for them to drain.
      this.socket.pause();
      this.socket.once('drain', () => this.resumeReading());
      return;
    }
    this.resumeReading();
  }

  private resumeReading(): void {
    if (this.gone) return;
    if (this.socket.isPaused()) this.socket.resume();
    // Pipelined requests: the next one on a later turn (no recursion through a burst).
    if (this.buf !== null) setImmediate(() => this.guarded(() => this.nextRequest()));
  }

  // ── one request ──────────────────────────────────────────────────────────────

  private request(r: RequestHead): void {
    const { ctx, door, proxy } = this.front;
    const t = resolveRequestTarget(r.target, r.host, r.hosts, !proxy, proxy ? 80 : this.front.originPort());
    if (!t.ok && t.status === 400) {
      protocolErrors.labels(door, t.kind ?? 'bad_request').inc();
      this.reply(400, errorBody(400, t.message), [], true);
      return;
    }
    const identity = proxy ? identify(ctx.engine, this.source, r.proxyAuthorization) : ctx.engine.identifyByAddress(this.source);
    if (identity === null) {
      this.reply(407, errorBody(407, 'wrong proxy credentials'), PROXY_AUTHENTICATE, r.close);
      return;
    }
    if (!t.ok) {
      const d = denyHostMismatch(ctx, identity, t.host, t.port, door);
      this.reply(403, denialBody(d, t.port), [DENIED_REASON_HEADER, HOST_MISMATCH], r.close);
      return;
    }
    const target = t.target;
    const a = ctx.gate.admitNow(identity, target.host, target.port, door);
    if (a instanceof Promise) {
      // Hold the connection's next bytes until this request is answered.
      this.state = 'deciding';
      a.then(
        (adm) => {
          this.state = 'reading';
          if (!this.gone) this.guarded(() => this.admitted(r, identity, target.host, target.port, target.path, adm));
        },
        (e: unknown) => {
          this.state = 'reading';
          ctx.log.error({ err: e }, 'forwarding failed');
          if (!this.gone) this.reply(502, errorBody(502, 'internal error'), [], r.close);
        },
      );
      return;
    }
    this.admitted(r, identity, target.host, target.port, target.path, a);
  }

  private admitted(r: RequestHead, identity: Identity, host: string, port: number, path: string, a: Admission): void {
    if (!a.ok) {
      this.refuse(admissionRefusal(a, host), port, r.close);
      return;
    }
    const flight = this.front.core.open(identity, host, port, a.decision, this.cut);
    if (flight === null) {
      this.refuse(TOO_MANY, port, r.close);
      return;
    }
    this.state = 'forwarding';
    this.socket.setTimeout(0);
    this.origin ??= new OriginSide(this.front, this);
    this.origin.start(newExchange(flight, r, path, a.address, port));
  }
}
