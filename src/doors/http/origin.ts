/**
 * The raw front's origin side: one client connection's requests, one at a time, written to
 * a pooled keep-alive connection to the checked address (or a fresh one), and the origin's
 * response relayed as it comes: head rewritten without hop-by-hop headers, body framing
 * followed (Content-Length, chunked, until close) but not re-encoded. A hostile origin
 * cannot desync it: bytes past a response's framing are never relayed and that origin
 * connection is not pooled again; a body cut short reaches the client cut, not complete.
 * The client side (front.ts) gives it requests and gets back the end of each.
 */
import type net from 'node:net';
import type { RequestHead, ResponseHead } from './framing.js';
import type { HttpFlight, Refusal } from './flight.js';
import type { Identity } from '../../policy/engine.js';
import type { DoorContext } from '../floor/context.js';
import type { Door } from '../../policy/decision.js';
import { protocolErrors, upstreamConnectErrors } from '../../metrics.js';
import { ByteAppender } from '../../byte-appender.js';
import { ChunkedScanner, blankSearched, parseResponseHead } from './framing.js';
import { filterHeaders, requestHeadText } from './headers.js';
import { upstreamFailure } from './flight.js';
import { DialError, dial } from '../floor/tunnel.js';
import type { IdleEntry, UpstreamPool } from '../floor/upstream-pool.js';

/** Largest origin response head accepted (node's http client allows 16 KiB). */
const MAX_RESPONSE_HEAD = 64 * 1024;

/** What the origin side needs of its door (the front, front.ts, is one), so it does not import the front back. */
export interface OriginDeps {
  readonly ctx: DoorContext<'config', 'connectTimeoutMs' | 'idleTimeoutMs' | 'responseTimeoutMs'>;
  readonly door: Door;
  readonly pool: UpstreamPool;
}

/** What the origin side needs of the client side of its connection. */
export interface ClientSide {
  readonly socket: net.Socket;
  /** The client shut its side and nothing is pipelined: this answer is its connection's last. */
  readonly lastRequest: boolean;
  /** `Connection:` (and `Keep-Alive:`) lines for an answer to the client. */
  connectionHeader(close: boolean): string;
  /** Answers the gateway's own refusal (the connection stays usable unless `close`). */
  refuse(r: Refusal, port: number, close: boolean): void;
  /** The exchange ended (its flight finished): the client side may take the next request. */
  settled(): void;
  /** A response went through whole: close if asked to, else read the next request. */
  requestDone(close: boolean): void;
  /** Runs a step from an event: a bug in it ends the connection, never the process. */
  guarded(step: () => void): void;
}

/** One request forwarded by the front, and what its response is doing. */
export interface Exchange {
  flight: HttpFlight;
  request: RequestHead;
  path: string;
  address: string;
  port: number;
  upstream: net.Socket | null;
  /** The upstream came from the pool (a failure before any answer is retried once, fresh). */
  reused: boolean;
  head: ResponseHead | null;
  headBuf: Buffer | null;
  /** How far headBuf was searched for the head's end. */
  headSearched: number;
  /** Body bytes still to relay (a length), or null for chunked / until close. */
  left: number | null;
  chunks: ChunkedScanner | null;
  /** False once the origin connection can't carry another request. */
  reusable: boolean;
  /** --response-timeout-ms: armed when the request went out, cleared by the response head. */
  headTimer: NodeJS.Timeout | null;
}

export function newExchange(flight: HttpFlight, request: RequestHead, path: string, address: string, port: number): Exchange {
  return {
    flight,
    request,
    path,
    address,
    port,
    upstream: null,
    reused: false,
    head: null,
    headBuf: null,
    headSearched: 0,
    left: null,
    chunks: null,
    reusable: true,
    headTimer: null,
  };
}

/**
 * The one set of listeners an origin socket keeps for its life: its events go to the
 * client connection using it, or, while it sits in the pool, to the pool's entry (any event
 * of an idle socket drops it). Moving a socket between pool and users costs no listener changes.
 */
class UpstreamLink {
  owner: OriginSide | null = null;
  idle: IdleEntry | null = null;

  constructor(sock: net.Socket) {
    sock.on('data', this.onData);
    sock.on('end', this.onEnd);
    sock.on('error', this.onError);
    sock.on('close', this.onClose);
    sock.on('timeout', this.onTimeout);
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.owner !== null) this.owner.onUpData(chunk);
    else this.idle?.drop();
  };

  private readonly onEnd = (): void => {
    if (this.owner !== null) this.owner.onUpEnd();
    else this.idle?.drop();
  };

  private readonly onError = (e: NodeJS.ErrnoException): void => {
    if (this.owner !== null) this.owner.onUpError(e);
    else this.idle?.drop();
  };

  private readonly onClose = (): void => {
    if (this.owner !== null) this.owner.onUpError(Object.assign(new Error('closed'), { code: 'ECONNRESET' }));
    else this.idle?.drop();
  };

  private readonly onTimeout = (): void => {
    if (this.owner !== null) this.owner.onUpIdle();
    else this.idle?.drop();
  };
}

const LINK = Symbol('upstream link');
type LinkedSocket = net.Socket & { [LINK]?: UpstreamLink };

function linkOf(sock: net.Socket): UpstreamLink {
  const s = sock as LinkedSocket;
  return (s[LINK] ??= new UpstreamLink(sock));
}

/** One per client connection. */
export class OriginSide {
  /** The exchange in flight, if any. */
  x: Exchange | null = null;
  private readonly headBytes = new ByteAppender();

  constructor(
    private readonly front: OriginDeps,
    private readonly client: ClientSide,
  ) {}

  /** Sends the exchange over a pooled origin connection, or a fresh one. */
  start(x: Exchange): void {
    this.x = x;
    const pooled = this.front.pool.take(x.address, x.port);
    if (pooled !== null) {
      x.reused = true;
      this.send(x, pooled);
    } else this.dialFor(x);
  }

  /** The client is gone (or the front failed): cut the origin request, count and log it. */
  abort(reason: string): void {
    const x = this.x;
    if (x === null || x.flight.done) return;
    x.upstream?.destroy();
    this.finish(x, reason);
  }

  /** A policy change now denies the request in flight. */
  destroyUpstream(): void {
    this.x?.upstream?.destroy();
  }

  private dialFor(x: Exchange): void {
    const { ctx, door } = this.front;
    dial(x.address, x.port, ctx.config.connectTimeoutMs, door).then(
      (s) => {
        if (x.flight.done) s.destroy();
        else this.client.guarded(() => this.send(x, s));
      },
      (e: unknown) => {
        if (x.flight.done) return;
        const err = e instanceof DialError ? e : new DialError('ERROR', 502);
        this.client.guarded(() => this.fail(x, err.code));
      },
    );
  }

  /** Writes the request head to the origin and starts reading its answer. */
  private send(x: Exchange, up: net.Socket): void {
    x.upstream = up;
    x.flight.attach(up);
    const link = linkOf(up);
    link.idle = null;
    link.owner = this;
    up.setTimeout(this.front.ctx.config.idleTimeoutMs);
    const r = x.request;
    up.write(requestHeadText(r.method, x.path, filterHeaders(r.headers), 'Connection: keep-alive\r\n'), 'latin1');
    if (up.isPaused()) up.resume();
    if (x.headTimer !== null) clearTimeout(x.headTimer);
    x.headTimer = setTimeout(() => this.onResponseTimeout(x), this.front.ctx.config.responseTimeoutMs);
  }

  /** The origin took the request and sent no response head within --response-timeout-ms. */
  private onResponseTimeout(x: Exchange): void {
    x.headTimer = null;
    if (x.flight.done || x.head !== null) return;
    upstreamConnectErrors.labels(this.front.door, 'response_timeout').inc();
    this.client.guarded(() => this.fail(x, 'response_timeout', `no response within ${this.front.ctx.config.responseTimeoutMs} ms`));
  }

  private clearResponseTimer(x: Exchange): void {
    if (x.headTimer !== null) {
      clearTimeout(x.headTimer);
      x.headTimer = null;
    }
  }

  /** The socket's events no longer come here. */
  private unown(up: net.Socket): void {
    const link = (up as LinkedSocket)[LINK];
    if (link !== undefined && link.owner === this) link.owner = null;
  }

  private detach(up: net.Socket): void {
    this.unown(up);
    up.setTimeout(0);
  }

  onUpData(chunk: Buffer): void {
    const x = this.x;
    if (x === null || x.flight.done) return;
    this.client.guarded(() => (x.head === null ? this.readHead(x, chunk) : this.relay(x, chunk)));
  }

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
        this.fail(x, 'bad_upstream_response', 'malformed response');
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
      const more = buf.length > h.end;
      // Bytes beyond a body-less answer: that origin connection is not trusted again.
      if (more && (bodyless(x, h) || h.length === 0)) x.reusable = false;
      // The head and the body bytes that came with it leave in one write (one syscall).
      const socket = this.client.socket;
      if (more) socket.cork();
      this.writeHead(x, h);
      if (more && !x.flight.done) this.relay(x, buf.subarray(h.end));
      if (more) socket.uncork();
      return;
    }
  }

  /**
   * The origin's head, rebuilt: hop-by-hop headers out; Transfer-Encoding as the origin
   * sent it, and then no Content-Length; else one Content-Length (a repeated one is
   * sent once); Connection for the client's side of the gateway.
   */
  private writeHead(x: Exchange, h: ResponseHead): void {
    const noBody = bodyless(x, h);
    const untilClose = !noBody && h.length === 'close';
    if (h.close || untilClose) x.reusable = false;
    // Past a body read until close, and past a client that asked or shut its side, the
    // client connection ends (pipelined requests already read are answered first).
    const closeClient = x.request.close || untilClose || this.client.lastRequest;
    if (closeClient) x.request.close = true;
    const headers = filterHeaders(h.headers);
    let text = `HTTP/1.1 ${h.status} ${h.reason}\r\n`;
    for (let i = 0; i < headers.length; i += 2) {
      if (headers[i]!.length === 14 && headers[i]!.toLowerCase() === 'content-length') continue;
      text += `${headers[i]}: ${headers[i + 1]}\r\n`;
    }
    if (h.te !== null) text += `Transfer-Encoding: ${h.te}\r\n`;
    else if (typeof h.length === 'number') text += `Content-Length: ${h.length}\r\n`;
    text += this.client.connectionHeader(closeClient) + '\r\n';
    if (noBody || h.length === 0) {
      this.client.socket.write(text, 'latin1');
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
        // The head (corked with this body in readHead) still reaches the client, then the cut.
        this.client.socket.uncork();
        this.client.socket.destroy();
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
    const socket = this.client.socket;
    if (!socket.write(data, 'latin1') && x.upstream !== null && !x.flight.done) {
      const up = x.upstream;
      up.pause();
      socket.once('drain', () => {
        if (!x.flight.done) up.resume();
      });
    }
  }

  onUpEnd(): void {
    const x = this.x;
    if (x === null || x.flight.done) return;
    x.reusable = false;
    if (x.head !== null && x.left === null && x.chunks === null) {
      this.complete(x); // a body read until the origin closes
      return;
    }
    if (x.head === null) this.upstreamFailed(x, 'ECONNRESET');
    else this.cutShort(x, 'upstream_closed');
  }

  onUpError(e: NodeJS.ErrnoException): void {
    const x = this.x;
    if (x === null || x.flight.done) return;
    x.reusable = false;
    if (x.head === null) this.upstreamFailed(x, e.code ?? 'ERROR');
    else this.cutShort(x, e.code ?? 'ERROR');
  }

  onUpIdle(): void {
    const x = this.x;
    if (x === null || x.flight.done) return;
    x.upstream?.destroy();
    if (x.head === null) this.fail(x, 'ETIMEDOUT');
    else this.cutShort(x, 'ETIMEDOUT');
  }

  /** The response broke mid-body: the client must see it broken, not complete. */
  private cutShort(x: Exchange, code: string): void {
    this.finish(x, code);
    this.client.socket.destroy();
  }

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
    this.fail(x, code);
  }

  /** No answer from the origin: 502/504 to the client (the connection stays usable). */
  private fail(x: Exchange, code: string, message?: string): void {
    x.reusable = false;
    x.upstream?.destroy();
    this.finish(x, code);
    this.client.refuse(upstreamFailure(x.flight.host, x.port, code, message), x.port, x.request.close);
  }

  /** The response went through whole. */
  private complete(x: Exchange): void {
    const up = x.upstream;
    if (up !== null) {
      this.unown(up);
      if (x.reusable) {
        const entry = this.front.pool.give(x.address, x.port, up, tenantKey(x.flight.identity));
        if (entry !== null) linkOf(up).idle = entry;
      } else up.destroy();
    }
    this.finish(x);
    this.client.requestDone(x.request.close);
  }

  /** Ends the exchange once: its flight counted and logged, the client side free for the next. */
  private finish(x: Exchange, error?: string): void {
    if (x.flight.done) return;
    this.clearResponseTimer(x);
    if (this.x === x) {
      this.x = null;
      this.client.settled();
    }
    if (error !== undefined && x.upstream !== null) this.detach(x.upstream);
    x.flight.finish(error);
  }
}

function bodyless(x: Exchange, h: ResponseHead): boolean {
  return x.request.method === 'HEAD' || h.status === 204 || h.status === 304;
}

/** The devbox a pooled socket is counted to (its source address when there is none). */
function tenantKey(id: Identity): string {
  return id.devboxId ?? `src:${id.source}`;
}
