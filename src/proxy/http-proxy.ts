/**
 * The HTTP proxy door (--http-proxy): absolute-form requests forwarded one decision per
 * request (a keep-alive connection may carry requests for several hosts), WebSocket
 * upgrades, and CONNECT tunnels. Also hosts the shared node:http server set-up used by
 * the transparent HTTP door.
 */
import http from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { HostPort } from '../config.js';
import { type DoorContext, type RunningDoor, listenError } from '../door.js';
import { type Door, type Reason, denial } from '../policy/decision.js';
import type { Identity } from '../policy/engine.js';
import { normalizeHost } from '../policy/hostname.js';
import { protocolErrors } from '../metrics.js';
import { handleConnect, parseAuthority } from './connect.js';
import { PROXY_AUTHENTICATE, endSocket, rawDenial, rawError, sendDenial, sendError } from './denial.js';
import { HttpForwarder, type HttpTarget } from './forward.js';
import { identify } from './proxy-auth.js';

export const HOST_MISMATCH: Reason = 'host_mismatch';

export type Resolution =
  | { ok: true; target: HttpTarget }
  | { ok: false; status: 400; message: string; kind?: 'bad_host' }
  | { ok: false; status: 403; host: string; port: number };

function hostCount(raw: string[]): number {
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.length === 4 && raw[i]!.toLowerCase() === 'host') n++;
  return n;
}

function sameHost(a: string, b: string): boolean {
  if (a === b) return true;
  const na = normalizeHost(a);
  const nb = normalizeHost(b);
  if (na.kind === 'name' && nb.kind === 'name') return na.name === nb.name;
  if (na.kind === 'ip' && nb.kind === 'ip') return na.ip === nb.ip;
  return false;
}

/**
 * The destination of an HTTP request. Absolute-form (`GET http://host[:port]/path`) names it
 * in the URL, and the Host header (when present) must agree with it; origin-form
 * (`GET /path`, transparent door only) takes it from the Host header.
 */
export function resolveTarget(req: http.IncomingMessage, allowOriginForm: boolean, originPort: number): Resolution {
  const url = req.url ?? '';
  if (req.httpVersionMajor !== 1) return { ok: false, status: 400, message: 'only HTTP/1.0 and HTTP/1.1 are accepted' };
  const hostHeader = req.headers.host;
  // node keeps the first of repeated Host headers; an origin may use the last one.
  if (hostHeader !== undefined && hostCount(req.rawHeaders) > 1) return { ok: false, status: 400, message: 'more than one Host header' };
  if (url.length > 7 && (url.charCodeAt(0) | 0x20) === 104 /* h */ && url.slice(0, 7).toLowerCase() === 'http://') {
    let end = url.indexOf('/', 7);
    const q = url.indexOf('?', 7);
    if (q >= 0 && (end < 0 || q < end)) end = q;
    const authority = end < 0 ? url.slice(7) : url.slice(7, end);
    const path = end < 0 ? '/' : url.charCodeAt(end) === 63 ? '/' + url.slice(end) : url.slice(end);
    if (authority.includes('@')) return { ok: false, status: 400, message: 'userinfo in the request URL is not accepted' };
    const a = parseAuthority(authority, 80);
    if (a === null) return { ok: false, status: 400, message: 'malformed host in the request URL' };
    if (hostHeader !== undefined) {
      const h = parseAuthority(hostHeader, 80);
      if (h === null || h.port !== a.port || !sameHost(h.host, a.host)) return { ok: false, status: 403, host: a.host, port: a.port };
    }
    const port = allowOriginForm ? originPort : a.port;
    return { ok: true, target: { host: a.host, port, path, hostHeader: hostHeader ?? authority } };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) return { ok: false, status: 400, message: 'only http:// URLs can be proxied (use CONNECT for https)' };
  if (!allowOriginForm) return { ok: false, status: 400, message: 'this is a proxy: send the absolute URL (GET http://host/path) or CONNECT' };
  if (url.charCodeAt(0) !== 47 /* / */) return { ok: false, status: 400, message: 'malformed request target' };
  if (hostHeader === undefined || hostHeader.length === 0) return { ok: false, status: 400, message: 'a Host header is required' };
  // node hands header bytes over as Latin-1: a byte ≥ 0x80 would become a bogus (punycoded) name.
  for (let i = 0; i < hostHeader.length; i++) {
    if (hostHeader.charCodeAt(i) >= 0x80) return { ok: false, status: 400, message: 'the Host header must be ASCII (send IDNs as xn--)', kind: 'bad_host' };
  }
  const h = parseAuthority(hostHeader, originPort);
  if (h === null) return { ok: false, status: 400, message: 'malformed Host header' };
  return { ok: true, target: { host: h.host, port: originPort, path: url, hostHeader } };
}

export interface HttpDoorOptions {
  door: Door;
  /** RunningDoor name and the setting named in listen errors. */
  name: string;
  setting: string;
  /** Proxy mode: absolute-form, CONNECT and Proxy-Authorization; else transparent (origin-form, fixed port). */
  proxy: boolean;
  /** Transparent mode: the port requests are forwarded to (asked per request). */
  originPort: () => number;
}

/** Starts a node:http server that decides and forwards every request. */
export async function startHttpDoor(ctx: DoorContext, at: HostPort, opts: HttpDoorOptions): Promise<RunningDoor> {
  const cfg = ctx.config;
  const forwarder = new HttpForwarder(ctx, opts.door);
  const server = http.createServer({
    maxHeaderSize: cfg.maxHeaderBytes,
    headersTimeout: cfg.headerTimeoutMs,
    requestTimeout: 0,
    keepAliveTimeout: Math.min(cfg.idleTimeoutMs, 120_000),
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(cfg.headerTimeoutMs / 4))),
    noDelay: true,
  });
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    if (!ctx.sourceLimit.admit(s, opts.door)) return;
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });

  const who = (req: http.IncomingMessage): Identity | null => {
    const source = req.socket.remoteAddress ?? '';
    return opts.proxy ? identify(ctx.engine, source, req.headers['proxy-authorization']) : ctx.engine.identifyByAddress(source);
  };

  const denyMismatch = (identity: Identity, host: string, port: number) => {
    // Name the devbox's policy in the denial: decide() on the URL's host gives it.
    const d = denial(HOST_MISMATCH, host, ctx.engine.decide(identity, host, port, opts.door), 'name');
    ctx.gate.record(identity, opts.door, d, port);
    protocolErrors.labels(opts.door, 'host_mismatch').inc();
    return d;
  };

  const forwardFailed = (res: http.ServerResponse) => (e: unknown) => {
    ctx.log.error({ err: e }, 'forwarding failed');
    sendError(res, 502, 'internal error');
  };

  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const r = resolveTarget(req, !opts.proxy, opts.proxy ? 80 : opts.originPort());
    if (!r.ok && r.status === 400) {
      protocolErrors.labels(opts.door, r.kind ?? 'bad_request').inc();
      sendError(res, 400, r.message, ['Connection', 'close']);
      return;
    }
    const identity = who(req);
    if (identity === null) {
      sendError(res, 407, 'wrong proxy credentials', PROXY_AUTHENTICATE);
      return;
    }
    if (!r.ok) {
      sendDenial(res, denyMismatch(identity, r.host, r.port), r.port);
      return;
    }
    try {
      const p = forwarder.forward(req, res, identity, r.target);
      if (p !== undefined) p.catch(forwardFailed(res));
    } catch (e) {
      forwardFailed(res)(e);
    }
  });

  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const r = resolveTarget(req, !opts.proxy, opts.proxy ? 80 : opts.originPort());
    if (!r.ok && r.status === 400) {
      protocolErrors.labels(opts.door, r.kind ?? 'bad_request').inc();
      endSocket(socket, rawError(400, r.message));
      return;
    }
    const identity = who(req);
    if (identity === null) {
      endSocket(socket, rawError(407, 'wrong proxy credentials', PROXY_AUTHENTICATE));
      return;
    }
    if (!r.ok) {
      endSocket(socket, rawDenial(denyMismatch(identity, r.host, r.port), r.port));
      return;
    }
    forwarder.upgrade(req, socket, head, identity, r.target).catch((e: unknown) => {
      ctx.log.error({ err: e }, 'upgrade failed');
      socket.destroy();
    });
  });

  if (opts.proxy) {
    server.on('connect', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      handleConnect(ctx, req, socket, head).catch((e: unknown) => {
        ctx.log.error({ err: e }, 'CONNECT failed');
        socket.destroy();
      });
    });
  } else {
    server.on('connect', (_req: http.IncomingMessage, socket: Duplex) => {
      protocolErrors.labels(opts.door, 'bad_request').inc();
      socket.on('error', () => socket.destroy());
      endSocket(socket, rawError(405, 'CONNECT is not accepted here'));
    });
  }

  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    socket.on('error', () => {});
    const code = err.code ?? '';
    if (code === 'ECONNRESET' || code === 'EPIPE' || !socket.writable) {
      socket.destroy();
      return;
    }
    let status = 400;
    let kind = 'bad_request';
    if (code === 'HPE_HEADER_OVERFLOW') {
      status = 431;
      kind = 'header_overflow';
    } else if (code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      status = 408;
      kind = 'header_timeout';
    }
    protocolErrors.labels(opts.door, kind).inc();
    socket.end(rawError(status, STATUS_MESSAGE[status]!), () => socket.destroy());
    // If the client never reads, do not keep the socket.
    const t = setTimeout(() => socket.destroy(), 1000);
    socket.once('close', () => clearTimeout(t));
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (e: unknown) => reject(listenError(opts.setting, at, e));
    server.once('error', onError);
    server.listen(at.port, at.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (e) => ctx.log.error({ err: e, door: opts.name }, 'listener error'));
  const bound = server.address() as net.AddressInfo;
  return {
    name: opts.name,
    address: { host: bound.address, port: bound.port },
    close: (graceMs) => closeServer(server, sockets, graceMs, () => forwarder.close()),
  };
}

const STATUS_MESSAGE: Record<number, string> = {
  400: 'malformed HTTP request',
  408: 'request headers took too long',
  431: 'request headers too large',
};

/** Stops accepting, lets open connections finish for up to graceMs, then closes the rest. */
export async function closeServer(server: { close(cb?: (err?: Error) => void): unknown; closeIdleConnections?(): void }, sockets: Set<net.Socket>, graceMs: number, after?: () => void): Promise<void> {
  const closed = new Promise<void>((r) => server.close(() => r()));
  server.closeIdleConnections?.();
  if (sockets.size > 0 && graceMs > 0) {
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        clearInterval(poll);
        resolve();
      };
      const timer = setTimeout(done, graceMs);
      const poll = setInterval(() => {
        server.closeIdleConnections?.();
        if (sockets.size === 0) done();
      }, 25);
    });
  }
  for (const s of sockets) s.destroy();
  after?.();
  await closed;
}

export async function startHttpProxy(ctx: DoorContext, at: HostPort): Promise<RunningDoor> {
  return startHttpDoor(ctx, at, { door: 'http', name: 'http-proxy', setting: '--http-proxy', proxy: true, originPort: () => 80 });
}
