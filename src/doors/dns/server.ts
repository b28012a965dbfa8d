/**
 * The DNS door's listeners: one UDP socket and one TCP server on the same address.
 * TCP carries length-prefixed messages, several (pipelined) per connection, answered as
 * they complete. Oversize or truncated frames, idle or over-limit connections are closed.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { Logger } from 'pino';
import type { HostPort } from '../../config.js';
import { listenError, listenOn } from '../floor/listen.js';
import type { DnsHandler, HandleResult } from './handler.js';
import { literalLookup } from '../../resolver/literal-lookup.js';
import { activeConnections, protocolErrors } from '../../metrics.js';
import { ByteAppender } from '../../byte-appender.js';

export interface DnsServerOptions {
  /** Largest TCP query frame accepted; a longer one closes the connection. */
  maxTcpQuery?: number;
  /** A TCP connection with nothing to say for this long is closed (RFC 7766 §6.2.3). */
  tcpIdleMs?: number;
  /** Open TCP connections in all, and per source address. */
  maxTcpConnections?: number;
  maxTcpPerClient?: number;
  /**
   * Known clients' connections, counted per devbox (all its addresses together) against a
   * global cap; when given, replaces maxTcpConnections/maxTcpPerClient for known clients.
   */
  knownShare?: { take(tenant: string): boolean; release(tenant: string): void };
  /** The tenant key of a known client's source address (its devbox). */
  tenantOf?: (source: string) => string;
  /** Queries in flight on one TCP connection before reading pauses. */
  maxTcpPipeline?: number;
  /**
   * Whether a source address is a running devbox. Others (which only ever get REFUSED)
   * share a small pool of their own, so they cannot fill the devboxes' connection table.
   */
  isKnownClient?: (source: string) => boolean;
  maxUnknownTcpConnections?: number;
  maxUnknownTcpPerClient?: number;
  /**
   * Which transports this process serves: both (default); 'udp' (a DNS worker: its UDP
   * socket is shared through node's cluster); 'tcp' (the main process when workers answer UDP).
   */
  transports?: 'both' | 'udp' | 'tcp';
}

export interface DnsServer {
  address: HostPort;
  close(graceMs: number): Promise<void>;
}

export async function startDnsServer(handler: DnsHandler, at: HostPort, log: Logger, opts: DnsServerOptions = {}): Promise<DnsServer> {
  const maxTcpQuery = opts.maxTcpQuery ?? 4096;
  const idleMs = opts.tcpIdleMs ?? 10_000;
  const maxConns = opts.maxTcpConnections ?? 1024;
  const maxPerClient = opts.maxTcpPerClient ?? 64;
  const maxPipeline = opts.maxTcpPipeline ?? 64;
  const isKnown = opts.isKnownClient ?? (() => true);
  const known: Pool = { conns: 0, max: maxConns, perClient: new Map(), maxPerClient, share: opts.knownShare, tenantOf: opts.tenantOf };
  const unknown: Pool = { conns: 0, max: opts.maxUnknownTcpConnections ?? 64, perClient: new Map(), maxPerClient: opts.maxUnknownTcpPerClient ?? 2 };

  // ── UDP ───────────────────────────────────────────────────────────────────
  const makeUdp = () => {
    const sock = dgram.createSocket({ type: net.isIPv6(at.host) ? 'udp6' : 'udp4', recvBufferSize: 8 << 20, sendBufferSize: 8 << 20, lookup: literalLookup });
    const send = (out: Buffer, rinfo: dgram.RemoteInfo) => sock.send(out, rinfo.port, rinfo.address);
    sock.on('error', (err) => log.warn({ event: 'dns_udp_error', err: err.message }, 'DNS UDP socket error'));
    sock.on('message', (msg, rinfo) => {
      let out: HandleResult;
      try {
        out = handler.handle(msg, rinfo.address, 'udp');
      } catch (err) {
        log.error({ event: 'dns_handler_error', err: (err as Error).message }, 'DNS handler failed');
        return;
      }
      if (out === null) return;
      if (out instanceof Promise)
        out.then(
          (b) => b !== null && send(b, rinfo),
          () => {},
        );
      else send(out, rinfo);
    });
    return sock;
  };
  const transports = opts.transports ?? 'both';
  let udp: dgram.Socket | null = null;
  let port = at.port;
  if (transports !== 'tcp') {
    udp = makeUdp();
    await bindUdp(udp, at.port, at.host).catch((err) => {
      throw listenError('--dns', at, err);
    });
    port = udp.address().port;
  }
  if (transports === 'udp') {
    const only = udp!;
    return {
      address: { host: at.host, port },
      close: async () => {
        try {
          only.close();
        } catch {
          /* closed */
        }
      },
    };
  }

  // ── TCP ───────────────────────────────────────────────────────────────────
  const conns = new Set<net.Socket>();
  const tcp = net.createServer((sock) => {
    const source = (sock.remoteAddress ?? '').replace(/^::ffff:/, '');
    const pool = isKnown(source) ? known : unknown;
    const slot = take(pool, source);
    if (slot === null) {
      protocolErrors.labels('dns', 'tcp_connection_limit').inc();
      sock.destroy();
      return;
    }
    conns.add(sock);
    activeConnections.labels('dns').inc();
    sock.setNoDelay(true);
    sock.setTimeout(idleMs, () => sock.destroy());
    let buf: Buffer = Buffer.alloc(0);
    let inflight = 0;
    let ended = false;
    const finishIfDone = () => {
      if (ended && inflight === 0 && !sock.destroyed) sock.end();
    };
    const write = (out: Buffer | null) => {
      if (out === null || sock.destroyed) return;
      const framed = Buffer.allocUnsafe(2 + out.length);
      framed.writeUInt16BE(out.length, 0);
      out.copy(framed, 2);
      // A client that does not read its answers stops being read (no unbounded buffering).
      if (!sock.write(framed) && !sock.isPaused()) {
        sock.pause();
        sock.once('drain', () => {
          if (!ended) sock.resume();
        });
      }
    };
    const pump = () => {
      while (buf.length >= 2 && inflight < maxPipeline) {
        const len = buf.readUInt16BE(0);
        if (len < 12 || len > maxTcpQuery) {
          protocolErrors.labels('dns', len < 12 ? 'tcp_frame_short' : 'tcp_frame_oversize').inc();
          sock.destroy();
          return;
        }
        if (buf.length < 2 + len) break;
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        let out: HandleResult;
        try {
          out = handler.handle(msg, source, 'tcp');
        } catch (err) {
          log.error({ event: 'dns_handler_error', err: (err as Error).message }, 'DNS handler failed');
          sock.destroy();
          return;
        }
        if (out instanceof Promise) {
          inflight++;
          out
            .then(write, () => {})
            .finally(() => {
              inflight--;
              if (sock.isPaused() && !ended) sock.resume();
              pump();
              finishIfDone();
            });
        } else {
          write(out);
        }
      }
      if (inflight >= maxPipeline) sock.pause();
      if (buf.length > maxTcpQuery + 2) sock.destroy();
    };
    const bytes = new ByteAppender();
    sock.on('data', (d: Buffer) => {
      buf = bytes.append(buf, d);
      pump();
    });
    sock.on('end', () => {
      ended = true;
      if (buf.length > 0) {
        protocolErrors.labels('dns', 'tcp_frame_truncated').inc();
        sock.destroy();
        return;
      }
      finishIfDone();
    });
    sock.on('error', () => {});
    sock.on('close', () => {
      conns.delete(sock);
      activeConnections.labels('dns').dec();
      release(pool, slot);
    });
  });
  tcp.on('error', (err) => log.warn({ event: 'dns_tcp_error', err: err.message }, 'DNS TCP server error'));
  // Port 0: UDP chose the port; if TCP cannot have the same one, both try another.
  for (let attempt = 0; ; attempt++) {
    try {
      await listenOn(tcp, port, at.host);
      port = (tcp.address() as net.AddressInfo).port;
      break;
    } catch (err) {
      const inUse = (err as NodeJS.ErrnoException).code === 'EADDRINUSE';
      if (at.port === 0 && inUse && attempt < 10 && udp !== null) {
        const old = udp;
        await new Promise<void>((r) => old.close(() => r()));
        const fresh = makeUdp();
        udp = fresh;
        await bindUdp(fresh, 0, at.host).catch((e) => {
          throw listenError('--dns', at, e);
        });
        port = fresh.address().port;
        continue;
      }
      udp?.close();
      throw listenError('--dns', { host: at.host, port }, err);
    }
  }

  return {
    address: { host: at.host, port },
    close: async (graceMs: number) => {
      try {
        udp?.close();
      } catch {
        /* closed */
      }
      const closed = new Promise<void>((r) => tcp.close(() => r()));
      for (const s of conns) s.end();
      const deadline = Date.now() + graceMs;
      while (conns.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      for (const s of conns) s.destroy();
      await closed;
    },
  };
}

interface Pool {
  conns: number;
  max: number;
  perClient: Map<string, number>;
  maxPerClient: number;
  /** Counted per tenant in a shared FairShare instead of the counts above. */
  share?: { take(tenant: string): boolean; release(tenant: string): void };
  tenantOf?: (source: string) => string;
}

/** Takes a connection slot; returns the key to release it with, or null when over a cap. */
function take(pool: Pool, source: string): string | null {
  if (pool.share) {
    const tenant = pool.tenantOf ? pool.tenantOf(source) : source;
    return pool.share.take(tenant) ? tenant : null;
  }
  const mine = (pool.perClient.get(source) ?? 0) + 1;
  if (pool.conns >= pool.max || mine > pool.maxPerClient) return null;
  pool.perClient.set(source, mine);
  pool.conns++;
  return source;
}

function release(pool: Pool, key: string): void {
  if (pool.share) return pool.share.release(key);
  pool.conns--;
  const n = (pool.perClient.get(key) ?? 1) - 1;
  if (n <= 0) pool.perClient.delete(key);
  else pool.perClient.set(key, n);
}

function bindUdp(sock: dgram.Socket, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(port, host, () => {
      sock.off('error', reject);
      resolve();
    });
  });
}
