/**
 * The HTTP proxy door (--http-proxy): absolute-form requests forwarded one decision per
 * request (a keep-alive connection may carry requests for several hosts), WebSocket
 * upgrades, and CONNECT tunnels. Also hosts the shared node:http server set-up used by
 * the transparent HTTP door.
 */
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { HostPort } from '../../config.js';
import type { RunningDoor } from '../floor/context.js';
import { closeServer } from '../floor/listen.js';
import { answerClientError, httpBehindClosable, listenHttpBehind } from '../floor/http-behind.js';
import type { Door } from '../../policy/decision.js';
import type { Identity } from '../../policy/engine.js';
import { protocolErrors } from '../../metrics.js';
import { handleConnect } from '../connect/door.js';
import { PROXY_AUTHENTICATE, endSocket, rawDenial, rawError, sendDenial, sendError } from '../floor/denial.js';
import { HttpForwarder } from './node-forward.js';
import type { HttpContext } from './flight.js';
import { upgrade } from './upgrade.js';
import { HttpFront } from './front.js';
import { denyHostMismatch, resolveTarget } from './target.js';
import { identify } from '../floor/proxy-auth.js';

export { HOST_MISMATCH, type Resolution, resolveTarget } from './target.js';

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
export async function startHttpDoor(ctx: HttpContext, at: HostPort, opts: HttpDoorOptions): Promise<RunningDoor> {
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
  const admit = (s: net.Socket): boolean => {
    if (!ctx.sourceLimit.admit(s, opts.door)) return false;
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    return true;
  };
  // The raw front reads every connection first and hands node:http what it does not
  // handle itself (front.ts).
  const front = new HttpFront(ctx, opts.door, (s) => server.emit('connection', s), opts.proxy, opts.originPort);
  // Half-open as node:http's own server: a client may send its request and then shut its side.
  const listener = net.createServer({ noDelay: true, allowHalfOpen: true }, (s) => {
    if (admit(s)) front.accept(s);
  });

  const who = (req: http.IncomingMessage): Identity | null => {
    const source = req.socket.remoteAddress ?? '';
    return opts.proxy ? identify(ctx.engine, source, req.headers['proxy-authorization']) : ctx.engine.identifyByAddress(source);
  };

  const denyMismatch = (identity: Identity, host: string, port: number) => denyHostMismatch(ctx, identity, host, port, opts.door);

  const forwardFailed = (res: http.ServerResponse) => (e: unknown) => {
    ctx.log.error({ err: e }, 'forwarding failed');
    sendError(res, 502, 'internal error');
  };

  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (forwarder.draining) res.shouldKeepAlive = false;
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
    upgrade(ctx, opts.door, req, socket, head, identity, r.target).catch((e: unknown) => {
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

  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => answerClientError(opts.door, err, socket));

  const address = await listenHttpBehind(listener, server, at, opts.setting, (e) => ctx.log.error({ err: e, door: opts.name }, 'listener error'));
  const closable = httpBehindClosable(listener, server, () => {
    forwarder.draining = true;
    front.closeIdle();
  });
  return {
    name: opts.name,
    address,
    close: (graceMs) =>
      closeServer(closable, sockets, graceMs, () => {
        forwarder.close();
        front.close();
      }),
  };
}

export async function startHttpProxy(ctx: HttpContext, at: HostPort): Promise<RunningDoor> {
  return startHttpDoor(ctx, at, { door: 'http', name: 'http-proxy', setting: '--http-proxy', proxy: true, originPort: () => 80 });
}

/** Transparent HTTP (--transparent-http): the Host header is decided, the request forwarded to the redirected port. */
export async function startTransparentHttp(ctx: HttpContext, at: HostPort): Promise<RunningDoor> {
  return startHttpDoor(ctx, at, {
    door: 'transparent-http',
    name: 'transparent-http',
    setting: '--transparent-http',
    proxy: false,
    originPort: () => ctx.config.transparentHttpUpstreamPort,
  });
}
