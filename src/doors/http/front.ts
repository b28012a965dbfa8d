/**
 * The HTTP doors' front (proxy and transparent): it reads each request head off the client socket and
 * handles the common requests itself, without node:http's per-request objects and streams,
 * which cost more than everything else on the hot path together:
 * - `CONNECT host:port` → connect.ts, as before;
 * - body-less requests (GET, HEAD, OPTIONS, DELETE over HTTP/1.1; absolute-form on the
 *   proxy, origin-form with a Host header on the transparent door) → decided,
 *   then written to a pooled keep-alive connection to the checked address, and the origin's
 *   response relayed as it comes (head rewritten without hop-by-hop headers, body framing
 *   followed but not re-encoded).
 * Anything else (a request body, an upgrade, HTTP/1.0, an unusual method, a head this
 * strict reading does not accept, an oversized head) is handed, with the connection and the
 * bytes read so far, to the node:http server behind the front, which answers it as it
 * always has. Same decisions, denials, limits, metrics and log lines either way.
 */
import type net from 'node:net';
import type { DoorContext } from '../floor/context.js';
import type { Decision, Door } from '../../policy/decision.js';
import type { Identity } from '../../policy/engine.js';
import type { TrackedConnection } from '../floor/tracker.js';
import type { Admission } from '../floor/gate.js';
import { bytesTotal, protocolErrors, upstreamConnectErrors } from '../../metrics.js';
import { connectTo } from '../connect/door.js';
import { DENIED_REASON_HEADER, PROXY_AUTHENTICATE, denialBody, errorBody, rawError, rawResponse } from '../floor/denial.js';
import { filterHeaders } from './forward.js';
import { ChunkedScanner, type RequestHead, type ResponseHead, blankSearched, parseRequestHead, parseResponseHead } from './framing.js';
import { ByteAppender } from '../../byte-appender.js';
import { HOST_MISMATCH, denyHostMismatch, resolveRequestTarget } from './target.js';
import { identify } from '../floor/proxy-auth.js';
import { DialError, dial } from '../floor/tunnel.js';
import type { UpstreamPool } from '../floor/upstream-pool.js';

/** Largest origin response head accepted (node's http client allows 16 KiB). */
const MAX_RESPONSE_HEAD = 64 * 1024;

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
  readonly bytesOut: { inc(v: number): void };
  readonly bytesIn: { inc(v: number): void };
  readonly keepAliveMs: number;
  /** Shutting down: every answer says Connection: close and ends its connection. */
  draining = false;
  private readonly conns = new Set<FrontConnection>();

  constructor(
    readonly ctx: DoorContext,
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
    this.bytesOut = bytesTotal.labels(door, 'out');
    this.bytesIn = bytesTotal.labels(door, 'in');
  }

  accept(socket: net.Socket): void {
    const c = new FrontConnection(this, socket);
    this.conns.add(c);
    socket.once('close', () => this.conns.delete(c));
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

/** One request in flight, for the tracker (a policy change that now denies it cuts it). */
class Flight implements TrackedConnection {
  constructor(
    readonly conn: FrontConnection,
    readonly identity: Identity,
    readonly host: string,
    readonly port: number,
    readonly door: Door,
  ) {}

  close(): void {
    this.conn.cut();
  }
}

/** What the response to the request in flight is doing. */
interface Exchange {
  flight: Flight;
  decision: Decision;
  request: RequestHead;
  path: string;
  address: string;
  port: number;
  started: number;
  upstream: net.Socket | null;
  /** The upstream came from the pool (a failure before any answer is retried once, fresh). */
  reused: boolean;
  outBase: number;
  inBase: number;
  head: ResponseHead | null;
  headBuf: Buffer | null;
  /** How far headBuf was searched for the head's end. */
  headSearched: number;
  /** Body bytes still to relay (a length), or null for chunked / until close. */
  left: number | null;
  chunks: ChunkedScanner | null;
  /** False once the origin connection can't carry another request. */
  reusable: boolean;
  done: boolean;
  /** --response-timeout-ms: armed when the request went out, cleared by the response head. */
  headTimer: NodeJS.Timeout | null;
}

class FrontConnection {
  private buf: Buffer | null = null;
  private readonly bytes = new ByteAppender();
  private readonly headBytes = new ByteAppender();
  /** How far the head at the start of `buf` was already searched for its end. */
  private headSearched = 0;
  private headTimer: NodeJS.Timeout | null = null;
  private x: Exchange | null = null;
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
    if (this.x !== null) {
      // Pipelined bytes wait for the response in flight (bounded: stop reading).
      if (this.buf.length > this.front.ctx.config.maxHeaderBytes) this.socket.pause();
      return;
    }
    this.guarded(() => this.nextRequest());
  };

  /** Runs a step from an event: a bug in it ends this connection (logged), never the process. */
  private guarded(step: () => void): void {
    try {
      step();
    } catch (e) {
      this.front.ctx.log.error({ err: e, door: this.front.door }, 'HTTP front failed');
      const x = this.x;
      if (x !== null) {
        x.upstream?.destroy();
        this.finish(x, 'internal_error');
      }
      this.gone = true;
      this.socket.destroy();
    }
  }

  private readonly onEnd = (): void => {
    this.clientEnded = true;
    // Requests already read are still answered; requestDone ends the connection after them.
    if (this.x === null && this.buf === null) this.socket.end();
    // A FIN with nothing pipelined after the request in flight: the client gave up on it
    // (curl -m, a killed process). Keeping it would hold the origin request, both sockets and
    // the devbox's connection slot until a time-out.
    else if (this.x !== null && this.buf === null) this.onClientGone();
  };

  private readonly onClientGone = (): void => {
    if (this.gone) return;
    this.gone = true;
    this.clearHeadTimer();
    const x = this.x;
    if (x !== null && x !== PENDING) {
      x.upstream?.destroy();
      this.finish(x, 'client_closed');
    }
    this.socket.destroy();
  };

  /** Idle between requests for the keep-alive time: close quietly. */
  private readonly onIdle = (): void => {
    if (this.x === null) this.socket.destroy();
  };

  private readonly onHeadTimeout = (): void => {
    this.headTimer = null;
    if (this.x !== null || this.gone) return;
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
    if (this.x === null && this.buf === null) this.socket.destroy();
  }

  /** A tracked request the policy now denies: cut both sides. */
  cut(): void {
    this.x?.upstream?.destroy();
    this.socket.destroy();
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

  private connectionHeader(close: boolean): string {
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
  private requestDone(close: boolean): void {
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
      this.x = PENDING;
      a.then(
        (adm) => {
          this.x = null;
          if (!this.gone) this.guarded(() => this.admitted(r, identity, target.host, target.port, target.path, adm));
        },
        (e: unknown) => {
          this.x = null;
          ctx.log.error({ err: e }, 'forwarding failed');
          if (!this.gone) this.reply(502, errorBody(502, 'internal error'), [], r.close);
        },
      );
      return;
    }
    this.admitted(r, identity, target.host, target.port, target.path, a);
  }

  private admitted(r: RequestHead, identity: Identity, host: string, port: number, path: string, a: Admission): void {
    const { ctx, door } = this.front;
    if (!a.ok) {
      if (a.error === 'denied') this.reply(403, denialBody(a.decision, port), [DENIED_REASON_HEADER, a.decision.reason], r.close);
      else this.reply(502, errorBody(502, `cannot resolve ${host}: ${a.detail}`), [], r.close);
      return;
    }
    const flight = new Flight(this, identity, host, port, door);
    if (!ctx.tracker.add(flight)) {
      this.reply(503, errorBody(503, 'too many open connections for this devbox'), [], r.close);
      return;
    }
    const x: Exchange = {
      flight, decision: a.decision, request: r, path, address: a.address, port, started: performance.now(),
      upstream: null, reused: false, outBase: 0, inBase: 0, head: null, headBuf: null, headSearched: 0, left: null, chunks: null, reusable: true, done: false,
      headTimer: null,
    };
    this.x = x;
    this.socket.setTimeout(0);
    const pooled = this.front.pool.take(a.address, port);
    if (pooled !== null) {
      x.reused = true;
      this.send(x, pooled);
    } else this.dialFor(x);
  }

  private dialFor(x: Exchange): void {
    const { ctx, door } = this.front;
    dial(x.address, x.port, ctx.config.connectTimeoutMs, door).then(
      (s) => {
        if (x.done) s.destroy();
        else this.guarded(() => this.send(x, s));
      },
      (e: unknown) => {
        if (x.done) return;
        const err = e instanceof DialError ? e : new DialError('ERROR', 502);
        this.guarded(() => this.fail(x, err.code, err.status));
      },
    );
  }

  /** Writes the request head to the origin and starts reading its answer. */
  private send(x: Exchange, up: net.Socket): void {
    x.upstream = up;
    x.outBase = up.bytesWritten;
    x.inBase = up.bytesRead;
    up.on('data', this.onUpData);
    up.on('end', this.onUpEnd);
    up.on('error', this.onUpError);
    up.on('close', this.onUpClose);
    up.on('timeout', this.onUpIdle);
    up.setTimeout(this.front.ctx.config.idleTimeoutMs);
    const r = x.request;
    const headers = filterHeaders(r.headers);
    let text = `${r.method} ${x.path} HTTP/1.1\r\n`;
    for (let i = 0; i < headers.length; i += 2) text += `${headers[i]}: ${headers[i + 1]}\r\n`;
    up.write(`${text}Connection: keep-alive\r\n\r\n`, 'latin1');
    if (up.isPaused()) up.resume();
    if (x.headTimer !== null) clearTimeout(x.headTimer);
    x.headTimer = setTimeout(() => this.onResponseTimeout(x), this.front.ctx.config.responseTimeoutMs);
  }

  /** The origin took the request and sent no response head within --response-timeout-ms. */
  private onResponseTimeout(x: Exchange): void {
    x.headTimer = null;
    if (x.done || x.head !== null) return;
    upstreamConnectErrors.labels(this.front.door, 'response_timeout').inc();
    this.guarded(() => this.fail(x, 'response_timeout', 504, `no response within ${this.front.ctx.config.responseTimeoutMs} ms`));
  }

  private clearResponseTimer(x: Exchange): void {
    if (x.headTimer !== null) {
      clearTimeout(x.headTimer);
      x.headTimer = null;
    }
  }

  private detach(up: net.Socket): void {
    up.off('data', this.onUpData);
    up.off('end', this.onUpEnd);
    up.off('error', this.onUpError);
    up.off('close', this.onUpClose);
    up.off('timeout', this.onUpIdle);
    up.setTimeout(0);
  }

  // ── origin side ──────────────────────────────────────────────────────────────

  private readonly onUpData = (chunk: Buffer): void => {
    const x = this.x;
    if (x === null || x.done) return;
    this.guarded(() => (x.head === null ? this.readHead(x, chunk) : this.relay(x, chunk)));
  };

  private readHead(x: Exchange, chunk: Buffer): void {
    let buf = x.headBuf === null ? chunk : this.headBytes.append(x.headBuf, chunk);
    for (;;) {
      const h = parseResponseHead(buf, 0, MAX_RESPONSE_HEAD, x.headSearched);
      if (h === 'incomplete') {
        x.headBuf = buf;
        x.headSearched = blankSearched(buf);
        return;
      }
      x.headSearched = 0;
      if (h === 'malformed' || h.status === 101) {
        x.reusable = false;
        this.fail(x, 'bad_upstream_response', 502, 'malformed response');
        return;
      }
      if (h.status < 200) {
        // Interim answers (100, 103) are not passed on (node:http did not either).
        buf = buf.subarray(h.end);
        if (buf.length === 0) {
          x.headBuf = null;
          return;
        }
        continue;
      }
      x.headBuf = null;
      x.head = h;
      this.clearResponseTimer(x);
      // Bytes beyond a body-less answer: that origin connection is not trusted again.
      if (buf.length > h.end && (this.bodyless(x, h) || h.length === 0)) x.reusable = false;
      this.writeHead(x, h);
      if (x.done) return;
      if (buf.length > h.end) this.relay(x, buf.subarray(h.end));
      return;
    }
  }

  private bodyless(x: Exchange, h: ResponseHead): boolean {
    return x.request.method === 'HEAD' || h.status === 204 || h.status === 304;
  }

  /**
   * The origin's head, rebuilt: hop-by-hop headers out; Transfer-Encoding as the origin
   * sent it, and then no Content-Length; else one Content-Length (a repeated one is
   * sent once); Connection for the client's side of the gateway.
   */
  private writeHead(x: Exchange, h: ResponseHead): void {
    const noBody = this.bodyless(x, h);
    const untilClose = !noBody && h.length === 'close';
    if (h.close || untilClose) x.reusable = false;
    // Past a body read until close, and past a client that asked or shut its side, the
    // client connection ends (pipelined requests already read are answered first).
    const closeClient = x.request.close || untilClose || (this.clientEnded && this.buf === null);
    if (closeClient) x.request.close = true;
    const headers = filterHeaders(h.headers);
    let text = `HTTP/1.1 ${h.status} ${h.reason}\r\n`;
    for (let i = 0; i < headers.length; i += 2) {
      if (headers[i]!.length === 14 && headers[i]!.toLowerCase() === 'content-length') continue;
      text += `${headers[i]}: ${headers[i + 1]}\r\n`;
    }
    if (h.te !== null) text += `Transfer-Encoding: ${h.te}\r\n`;
    else if (typeof h.length === 'number') text += `Content-Length: ${h.length}\r\n`;
    text += this.connectionHeader(closeClient) + '\r\n';
    if (noBody || h.length === 0) {
      this.socket.write(text, 'latin1');
      this.complete(x);
      return;
    }
    if (typeof h.length === 'number') x.left = h.length;
    else if (h.length === 'chunked') x.chunks = new ChunkedScanner();
    this.write(x, text);
  }

  /** Passes body bytes on, and completes the exchange where the body ends. */
  private relay(x: Exchange, b: Buffer): void {
    if (x.left !== null) {
      if (b.length >= x.left) {
        if (b.length > x.left) x.reusable = false; // the origin sent more than it framed
        this.write(x, x.left === b.length ? b : b.subarray(0, x.left));
        x.left = 0;
        this.complete(x);
        return;
      }
      x.left -= b.length;
      this.write(x, b);
      return;
    }
    if (x.chunks !== null) {
      const end = x.chunks.scan(b, 0);
      if (end === -2) {
        protocolErrors.labels(this.front.door, 'bad_upstream_response').inc();
        x.upstream?.destroy();
        this.finish(x, 'bad_upstream_response');
        this.socket.destroy();
        return;
      }
      if (end === -1) {
        this.write(x, b);
        return;
      }
      if (end < b.length) x.reusable = false;
      this.write(x, end === b.length ? b : b.subarray(0, end));
      this.complete(x);
      return;
    }
    this.write(x, b); // until the origin closes
  }

  private write(x: Exchange, data: Buffer | string): void {
    if (!this.socket.write(data, 'latin1') && x.upstream !== null && !x.done) {
      const up = x.upstream;
      up.pause();
      this.socket.once('drain', () => {
        if (!x.done) up.resume();
      });
    }
  }

  private readonly onUpEnd = (): void => {
    const x = this.x;
    if (x === null || x.done) return;
    x.reusable = false;
    if (x.head !== null && x.left === null && x.chunks === null) {
      this.complete(x); // a body read until the origin closes
      return;
    }
    if (x.head === null) this.upstreamFailed(x, 'ECONNRESET');
    else {
      // Cut short mid-body: the client must see it broken, not complete.
      this.finish(x, 'upstream_closed');
      this.socket.destroy();
    }
  };

  private readonly onUpError = (e: NodeJS.ErrnoException): void => {
    const x = this.x;
    if (x === null || x.done) return;
    x.reusable = false;
    if (x.head === null) this.upstreamFailed(x, e.code ?? 'ERROR');
    else {
      this.finish(x, e.code ?? 'ERROR');
      this.socket.destroy();
    }
  };

  private readonly onUpClose = (): void => this.onUpError(Object.assign(new Error('closed'), { code: 'ECONNRESET' }));

  private readonly onUpIdle = (): void => {
    const x = this.x;
    if (x === null || x.done) return;
    x.upstream?.destroy();
    if (x.head === null) this.fail(x, 'ETIMEDOUT', 504);
    else {
      this.finish(x, 'ETIMEDOUT');
      this.socket.destroy();
    }
  };

  /** The origin failed before answering: a reused connection gets one fresh try. */
  private upstreamFailed(x: Exchange, code: string): void {
    const up = x.upstream;
    if (up !== null) {
      this.detach(up);
      up.destroy();
    }
    if (x.reused && x.headBuf === null && x.request.method !== 'DELETE') {
      x.reused = false;
      x.upstream = null;
      this.dialFor(x);
      return;
    }
    this.fail(x, code, code === 'ETIMEDOUT' ? 504 : 502);
  }

  /** No answer from the origin: 502/504 to the client (the connection stays usable). */
  private fail(x: Exchange, code: string, status: 502 | 504, message?: string): void {
    x.reusable = false;
    x.upstream?.destroy();
    this.finish(x, code);
    this.reply(status, errorBody(status, `upstream ${x.flight.host}:${x.port}: ${message ?? code}`), [], x.request.close);
  }

  /** The response went through whole. */
  private complete(x: Exchange): void {
    const up = x.upstream;
    if (up !== null) {
      this.detach(up);
      if (x.reusable) this.front.pool.give(x.address, x.port, up, tenantKey(x.flight.identity));
      else up.destroy();
    }
    this.finish(x);
    this.requestDone(x.request.close);
  }

  /** Counts, logs and unregisters the exchange, once. */
  private finish(x: Exchange, error?: string): void {
    if (x.done) return;
    x.done = true;
    this.clearResponseTimer(x);
    if (this.x === x) this.x = null;
    const { ctx, door } = this.front;
    ctx.tracker.remove(x.flight);
    let out = 0;
    let inn = 0;
    const up = x.upstream;
    if (up !== null) {
      out = up.bytesWritten - x.outBase;
      inn = up.bytesRead - x.inBase;
      if (out > 0) this.front.bytesOut.inc(out);
      if (inn > 0) this.front.bytesIn.inc(inn);
      if (error !== undefined) this.detach(up);
    }
    ctx.gate.logConnection(x.flight.identity, door, x.decision, x.port, out, inn, performance.now() - x.started, error);
  }
}

/** The devbox a pooled socket is counted to (its source address when there is none). */
function tenantKey(id: Identity): string {
  return id.devboxId ?? `src:${id.source}`;
}

/** Marks a connection whose request waits for a DNS answer (its next bytes wait too). */
const PENDING = { done: true } as unknown as Exchange;
