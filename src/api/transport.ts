/**
 * One port, two protocols. The official SDK speaks HTTP/2 with prior knowledge (h2c) to
 * an http:// base URL; curl and most tools speak HTTP/1.1. Fastify's own `http2: true`
 * cannot take HTTP/1.1 in cleartext, so:
 *
 * - cleartext: an http.Server listens; its 'connection' listener is swapped for one that
 *   peeks at the first bytes. The HTTP/2 client preface goes to an http2 server
 *   (`emit('connection')`, peeked bytes unshifted), anything else to the http.Server's
 *   own connection handling. Both serve the same Fastify handler.
 * - TLS: http2.createSecureServer({ allowHTTP1: true }) picks by ALPN (h2, http/1.1).
 *
 * Closing stops accepting, sends GOAWAY to HTTP/2 sessions (the SDK keeps its session
 * open), closes idle HTTP/1.1 keep-alive sockets, waits up to the grace period for
 * requests in flight, then destroys what is left.
 */
import http from 'node:http';
import http2 from 'node:http2';
import { Duplex } from 'node:stream';
import type net from 'node:net';
import type tls from 'node:tls';
import type { HostPort } from '../config.js';

type Handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => void;

export interface TransportOptions {
  tls: { cert: string | Buffer; key: string | Buffer } | null;
  /** Time a client has to send its first bytes / request head. */
  headerTimeoutMs: number;
  maxHeaderBytes: number;
  /** Keep-alive sockets and HTTP/2 sessions idle this long are closed. */
  idleTimeoutMs: number;
  /** Largest request body; an HTTP/1.1 `Expect: 100-continue` for more is refused before the body is sent. */
  bodyLimit: number;
  /** The response body (JSON text) for a refused oversized body. */
  tooLargeBody: string;
}

export interface DualServer {
  address: HostPort;
  close(graceMs: number): Promise<void>;
}

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export async function listenDual(handler: Handler, at: HostPort, opts: TransportOptions): Promise<DualServer> {
  /** Sockets carrying HTTP (TLS sockets after the handshake in TLS mode). */
  const sockets = new Set<net.Socket>();
  /** Every accepted TCP socket, destroyed at the end of the grace period. */
  const raw = new Set<net.Socket>();
  const h2Sockets = new WeakSet<net.Socket>();
  const sessions = new Set<http2.Http2Session>();
  const inflight = new Map<net.Socket, number>();
  let closing = false;

  const h2Settings = { maxHeaderListSize: opts.maxHeaderBytes };
  const onSession = (s: http2.Http2Session) => {
    sessions.add(s);
    s.setTimeout(opts.idleTimeoutMs, () => s.close());
    s.once('close', () => sessions.delete(s));
    s.on('error', () => undefined);
    if (closing) s.close();
  };

  /** Counts HTTP/1.x requests per socket so idle keep-alive sockets can be closed at shutdown. */
  const track = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => {
    if (req.httpVersionMajor !== 1) return;
    const sock = req.socket as net.Socket;
    inflight.set(sock, (inflight.get(sock) ?? 0) + 1);
    if (closing) (res as http.ServerResponse).shouldKeepAlive = false;
    res.once('close', () => {
      const n = (inflight.get(sock) ?? 1) - 1;
      if (n <= 0) inflight.delete(sock);
      else inflight.set(sock, n);
      if (closing && n <= 0) sock.destroySoon();
    });
  };
  const serve: Handler = (req, res) => {
    track(req, res);
    handler(req, res);
  };
  /** Expect: 100-continue: refuse an oversized body before the client sends it. */
  const onCheckContinue = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const len = Number(req.headers['content-length'] ?? '0');
    if (Number.isFinite(len) && len > opts.bodyLimit) {
      res.shouldKeepAlive = false;
      res.writeHead(413, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(opts.tooLargeBody) });
      res.end(opts.tooLargeBody);
      return;
    }
    res.writeContinue();
    serve(req, res);
  };
  const trackSocket = (s: net.Socket) => {
    sockets.add(s);
    s.once('close', () => {
      sockets.delete(s);
      inflight.delete(s);
    });
  };

  let listener: net.Server;
  if (opts.tls) {
    const server = http2.createSecureServer(
      {
        cert: opts.tls.cert,
        key: opts.tls.key,
        allowHTTP1: true,
        ALPNProtocols: ['h2', 'http/1.1'],
        settings: h2Settings,
        maxSessionMemory: 32,
      },
      serve as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
    );
    server.on('session', onSession);
    server.on('connection', (s: net.Socket) => {
      raw.add(s);
      s.once('close', () => raw.delete(s));
    });
    server.on('secureConnection', (s: tls.TLSSocket) => {
      if (s.alpnProtocol === 'h2') h2Sockets.add(s);
      trackSocket(s);
    });
    server.on('tlsClientError', () => undefined);
    server.setTimeout(opts.idleTimeoutMs);
    server.on('checkContinue', onCheckContinue);
    listener = server as unknown as tls.Server;
  } else {
    const h2 = http2.createServer({ settings: h2Settings, maxSessionMemory: 32 }, serve as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void);
    h2.on('session', onSession);
    const h1 = http.createServer({ maxHeaderSize: opts.maxHeaderBytes, requestTimeout: 60_000, keepAliveTimeout: 5_000 }, serve as http.RequestListener);
    h1.headersTimeout = opts.headerTimeoutMs;
    h1.timeout = opts.idleTimeoutMs;
    h1.on('checkContinue', onCheckContinue);
    const h1Connection = h1.listeners('connection');
    h1.removeAllListeners('connection');
    h1.on('connection', (socket: net.Socket) => {
      trackSocket(socket);
      raw.add(socket);
      socket.once('close', () => raw.delete(socket));
      socket.on('error', () => socket.destroy());
      let buf: Buffer = Buffer.alloc(0);
      const timer = setTimeout(() => socket.destroy(), opts.headerTimeoutMs);
      const onData = (chunk: Buffer) => {
        buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
        const n = Math.min(buf.length, PREFACE.length);
        const h2Prefix = buf.subarray(0, n).equals(PREFACE.subarray(0, n));
        if (h2Prefix && buf.length < PREFACE.length) return; // could still be h2: wait for more
        clearTimeout(timer);
        socket.off('data', onData);
        socket.off('end', onEnd);
        socket.pause();
        if (h2Prefix) {
          h2Sockets.add(socket);
          h2.emit('connection', replay(socket, buf));
        } else {
          socket.unshift(buf);
          for (const l of h1Connection) (l as (s: net.Socket) => void).call(h1, socket);
          socket.resume();
        }
      };
      const onEnd = () => {
        clearTimeout(timer);
        socket.destroy();
      };
      socket.on('data', onData);
      socket.once('end', onEnd);
    });
    listener = h1;
  }

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    listener.once('error', onError);
    listener.listen({ host: at.host, port: at.port }, () => {
      listener.off('error', onError);
      resolve();
    });
  });
  const a = listener.address() as net.AddressInfo;

  return {
    address: { host: a.address, port: a.port },
    async close(graceMs: number) {
      closing = true;
      const stopped = new Promise<void>((resolve) => listener.close(() => resolve()));
      for (const s of sessions) s.close();
      for (const sock of sockets) if (!inflight.has(sock) && !h2Sockets.has(sock)) sock.destroySoon();
      const deadline = Date.now() + graceMs;
      while (sockets.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      for (const s of sessions) s.destroy();
      for (const sock of sockets) sock.destroy();
      for (const sock of raw) sock.destroy();
      await stopped;
    },
  };
}

/**
 * The HTTP/2 session reads from the socket's native handle, so bytes already read in
 * JavaScript (the peeked preface) cannot be pushed back. Hand it a Duplex that replays
 * them and then relays the socket; Node wraps non-native streams itself.
 */
function replay(socket: net.Socket, first: Buffer): Duplex {
  const dup = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      socket.write(chunk, cb);
    },
    final(cb) {
      socket.end();
      cb();
    },
    destroy(err, cb) {
      socket.destroy(err ?? undefined);
      cb(err);
    },
  });
  const d = dup as Duplex & Record<string, unknown>;
  d.remoteAddress = socket.remoteAddress;
  d.remotePort = socket.remotePort;
  d.remoteFamily = socket.remoteFamily;
  d.setTimeout = (ms: number, cb?: () => void) => {
    socket.setTimeout(ms, cb);
    return dup;
  };
  d.setNoDelay = (v?: boolean) => {
    socket.setNoDelay(v);
    return dup;
  };
  d.setKeepAlive = (v?: boolean, delay?: number) => {
    socket.setKeepAlive(v, delay);
    return dup;
  };
  socket.on('timeout', () => dup.emit('timeout'));
  dup.push(first);
  socket.on('data', (chunk: Buffer) => {
    if (!dup.push(chunk)) socket.pause();
  });
  socket.on('end', () => dup.push(null));
  socket.on('close', () => dup.destroy());
  return dup;
}
