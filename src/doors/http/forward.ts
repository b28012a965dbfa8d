/**
 * Plain HTTP forwarding (the HTTP proxy's absolute-form requests and the transparent HTTP
 * door): one decision per request, on that request's own host, then the request goes to
 * the address Gate.admit checked, over a keep-alive pool keyed by address:port, with the
 * client's Host header preserved and hop-by-hop headers removed both ways.
 * WebSocket (and other) upgrades become a Tunnel after the same decision, spliced both ways
 * only once the origin answered `101` (any other answer is relayed and the connection ends).
 */
import http from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { DoorContext } from '../floor/context.js';
import type { Door } from '../../policy/decision.js';
import type { Identity } from '../../policy/engine.js';
import type { TrackedConnection } from '../floor/tracker.js';
import { bytesTotal, upstreamConnectErrors } from '../../metrics.js';
import { endSocket, rawDenial, rawError, sendDenial, sendError } from '../floor/denial.js';
import { blankSearched, parseResponseHead } from './framing.js';
import { ByteAppender } from '../../byte-appender.js';
import { Tunnel } from '../floor/tunnel.js';
import type { Admission } from '../floor/gate.js';

export interface HttpTarget {
  /** Host as the client named it (URL authority or Host header), without port or brackets. */
  host: string;
  port: number;
  /** origin-form path sent upstream. */
  path: string;
  /** The Host header value to send upstream (the client's own, verified). */
  hostHeader: string;
}

/** Request headers never forwarded (RFC 9110 §7.6.1 plus proxy-only ones). Lower-case. */
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-authorization', 'proxy-authenticate', 'proxy-connection',
  'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect', 'http2-settings',
]);

/** Names listed in Connection headers (they are hop-by-hop too). */
function connectionTokens(raw: string[]): Set<string> | null {
  let out: Set<string> | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length !== 10 && name.length !== 16) continue;
    const lower = name.toLowerCase();
    if (lower !== 'connection' && lower !== 'proxy-connection') continue;
    for (const t of raw[i + 1]!.split(',')) {
      const tok = t.trim().toLowerCase();
      if (tok === '' || tok === 'close' || tok === 'keep-alive' || tok === 'upgrade') continue;
      (out ??= new Set()).add(tok);
    }
  }
  return out;
}

/**
 * Copies raw headers without the hop-by-hop ones. `keepUpgrade` keeps Connection: Upgrade
 * and Upgrade (for an upgrade request). `host` replaces the Host header when given.
 */
export function filterHeaders(raw: string[], keepUpgrade = false): string[] {
  const listed = connectionTokens(raw);
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower)) {
      if (!(keepUpgrade && lower === 'upgrade')) continue;
    }
    if (listed?.has(lower)) continue;
    out.push(name, raw[i + 1]!);
  }
  if (keepUpgrade) out.push('Connection', 'Upgrade');
  return out;
}

function hasHost(raw: string[]): boolean {
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.length === 4 && raw[i]!.toLowerCase() === 'host') return true;
  return false;
}

/** What a forwarded request in flight registers with the tracker. */
class InFlight implements TrackedConnection {
  upstream: http.ClientRequest | null = null;
  constructor(
    readonly identity: Identity,
    readonly host: string,
    readonly port: number,
    readonly door: Door,
    readonly res: http.ServerResponse,
  ) {}
  close(): void {
    this.upstream?.destroy();
    this.res.socket?.destroy();
  }
}

export class HttpForwarder {
  readonly agent: http.Agent;
  private readonly bytesOut: { inc(v: number): void };
  private readonly bytesIn: { inc(v: number): void };

  constructor(private readonly ctx: DoorContext, private readonly door: Door) {
    this.bytesOut = bytesTotal.labels(door, 'out');
    this.bytesIn = bytesTotal.labels(door, 'in');
    this.agent = new http.Agent({
      keepAlive: true,
      keepAliveMsecs: 1000,
      maxSockets: Infinity,
      maxFreeSockets: 256,
      scheduling: 'lifo',
      timeout: ctx.config.idleTimeoutMs,
      // passed to net.connect: no Nagle on upstream sockets (small requests would wait for ACKs)
      noDelay: true,
    } as http.AgentOptions);
  }

  /** Shutting down: answers say Connection: close. */
  draining = false;

  close(): void {
    this.agent.destroy();
  }

  /**
   * Decides on target.host and forwards, or answers 403/502/503/504. Synchronous when the
   * decision needs no DNS round trip (a cached name, an IP, a denial); else the promise of
   * the rest.
   */
  forward(req: http.IncomingMessage, res: http.ServerResponse, identity: Identity, t: HttpTarget): Promise<void> | undefined {
    const a = this.ctx.gate.admitNow(identity, t.host, t.port, this.door);
    if (a instanceof Promise) return a.then((admission) => this.send(req, res, identity, t, admission));
    this.send(req, res, identity, t, a);
    return undefined;
  }

  private send(req: http.IncomingMessage, res: http.ServerResponse, identity: Identity, t: HttpTarget, admission: Admission): void {
    const ctx = this.ctx;
    const door = this.door;
    if (!admission.ok) {
      if (admission.error === 'denied') sendDenial(res, admission.decision, t.port);
      else sendError(res, 502, `cannot resolve ${t.host}: ${admission.detail}`);
      return;
    }
    if (res.destroyed) return;
    const flight = new InFlight(identity, t.host, t.port, door, res);
    if (!ctx.tracker.add(flight)) {
      sendError(res, 503, 'too many open connections for this devbox');
      return;
    }
    const started = performance.now();
    const decision = admission.decision;
    const headers = filterHeaders(req.rawHeaders);
    if (!hasHost(headers)) headers.push('Host', t.hostHeader);
    const up = http.request({
      host: admission.address,
      port: t.port,
      method: req.method,
      path: t.path,
      headers,
      agent: this.agent,
      setHost: false,
    });
    flight.upstream = up;
    let outBase = 0;
    let inBase = 0;
    let sock: net.Socket | null = null;
    let connectTimer: NodeJS.Timeout | null = null;
    let responseTimer: NodeJS.Timeout | null = null;
    let finished = false;
    const client = req.socket;
    // A FIN while this request waits (nothing pipelined after it): the client gave up on it.
    const onClientEnd = () => {
      if (finished) return;
      up.destroy();
      finish('client_closed');
      client.destroy();
    };
    client.once('end', onClientEnd);
    const finish = (error?: string) => {
      if (finished) return;
      finished = true;
      client.off('end', onClientEnd);
      if (connectTimer !== null) clearTimeout(connectTimer);
      if (responseTimer !== null) clearTimeout(responseTimer);
      ctx.tracker.remove(flight);
      let out = 0;
      let inn = 0;
      if (sock !== null) {
        out = sock.bytesWritten - outBase;
        inn = sock.bytesRead - inBase;
        if (out > 0) this.bytesOut.inc(out);
        if (inn > 0) this.bytesIn.inc(inn);
      }
      ctx.gate.logConnection(identity, door, decision, t.port, out, inn, performance.now() - started, error);
    };
    up.on('socket', (s: net.Socket) => {
      sock = s;
      outBase = s.bytesWritten;
      inBase = s.bytesRead;
      if (s.connecting) {
        connectTimer = setTimeout(() => {
          connectTimer = null;
          up.destroy(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' }));
        }, ctx.config.connectTimeoutMs);
        s.once('connect', () => {
          if (connectTimer !== null) clearTimeout(connectTimer);
          connectTimer = null;
        });
      }
    });
    // The agent's `timeout` arms the socket's idle timer; node re-emits it on the request.
    up.on('timeout', () => up.destroy(Object.assign(new Error('upstream idle'), { code: 'ETIMEDOUT' })));
    up.on('error', (e: NodeJS.ErrnoException) => {
      if (finished) return; // the client went away first and we destroyed the request
      const code = e.code ?? 'ERROR';
      const connecting = sock === null || sock.connecting || sock.bytesRead === inBase;
      if (!res.headersSent) {
        if (connecting) upstreamConnectErrors.labels(door, code).inc();
        sendError(res, code === 'ETIMEDOUT' ? 504 : 502, `upstream ${t.host}:${t.port}: ${code}`);
      } else {
        res.destroy();
      }
      finish(code);
    });
    // The request (and its body) went out: the origin has --response-timeout-ms to answer.
    up.on('finish', () => {
      if (finished) return;
      responseTimer = setTimeout(() => {
        responseTimer = null;
        up.destroy(Object.assign(new Error('no response'), { code: 'ETIMEDOUT' }));
      }, ctx.config.responseTimeoutMs);
    });
    up.on('response', (upRes: http.IncomingMessage) => {
      if (responseTimer !== null) clearTimeout(responseTimer);
      responseTimer = null;
      if (this.draining) res.shouldKeepAlive = false;
      const status = upRes.statusCode ?? 502;
      res.writeHead(status, upRes.statusMessage, filterHeaders(upRes.rawHeaders));
      upRes.pipe(res);
      upRes.on('error', () => res.destroy());
    });
    res.on('close', () => {
      if (!res.writableFinished) {
        up.destroy();
        finish('client_closed');
      } else finish();
    });
    req.pipe(up);
  }

  /**
   * An upgrade (WebSocket): same decision, then the request head goes upstream and only the
   * origin's answer is read. A `101` is relayed and both directions spliced; any other
   * answer is relayed and the connection ends: nothing more of the client reaches the origin
   * (else a keep-alive origin would take the client's next request, for any Host, undecided).
   */
  async upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, identity: Identity, t: HttpTarget): Promise<void> {
    const ctx = this.ctx;
    const a = ctx.gate.admitNow(identity, t.host, t.port, this.door);
    const admission = a instanceof Promise ? await a : a;
    if (!admission.ok) {
      endSocket(socket, admission.error === 'denied' ? rawDenial(admission.decision, t.port) : rawError(502, `cannot resolve ${t.host}: ${admission.detail}`));
      return;
    }
    if (socket.destroyed) return;
    const tunnel = Tunnel.open(ctx, socket as net.Socket, { door: this.door, identity, decision: admission.decision, host: t.host, port: t.port });
    if (tunnel === null) {
      endSocket(socket, rawError(503, 'too many open connections for this devbox'));
      return;
    }
    const err = await tunnel.connect(admission.address);
    if (err) {
      tunnel.close(err.code, rawError(err.status, `upstream ${t.host}:${t.port}: ${err.code}`));
      return;
    }
    const headers = filterHeaders(req.rawHeaders, true);
    if (!hasHost(headers)) headers.push('Host', t.hostHeader);
    let text = `${req.method} ${t.path} HTTP/1.1\r\n`;
    for (let i = 0; i < headers.length; i += 2) text += `${headers[i]}: ${headers[i + 1]}\r\n`;
    text += '\r\n';
    tunnel.upstream!.write(Buffer.from(text, 'latin1'));
    awaitUpgradeAnswer(ctx, tunnel, head, req.method === 'HEAD', `${t.host}:${t.port}`);
  }
}

/**
 * After an upgrade request went upstream: reads the origin's answer (heads bounded by
 * maxHeaderBytes, within headerTimeoutMs) while the client's bytes stay unread. `101` →
 * relay it and splice both ways (with `clientHead`, what the client sent after its request).
 * Another final status → relay that response (until its Content-Length is met or the
 * origin ends) and end; the client → origin direction is never started. Interim 1xx heads
 * are relayed with the answer. A malformed or oversized head → 502; silence → 504.
 */
function awaitUpgradeAnswer(ctx: DoorContext, tunnel: Tunnel, clientHead: Buffer, headRequest: boolean, target: string): void {
  const client = tunnel.client;
  const up = tunnel.upstream!;
  const max = ctx.config.maxHeaderBytes;
  let buf: Buffer | null = null;
  /** Where the next head starts in buf (past relayed interim 1xx heads). */
  let at = 0;
  /** How far the head at `at` was already searched for its end. */
  let searched = 0;
  const headBytes = new ByteAppender();
  /** Body bytes still to relay after a non-101 answer; null while reading heads. */
  let bodyLeft: number | null = null;
  const timer = setTimeout(() => {
    if (bodyLeft === null) tunnel.close('upstream_header_timeout', rawError(504, `upstream ${target}: no response to the upgrade request`));
  }, ctx.config.headerTimeoutMs);
  client.once('close', () => clearTimeout(timer));
  const onDrain = () => {
    if (!tunnel.closed) up.resume();
  };

  const relayBody = (chunk: Buffer) => {
    if (chunk.length >= bodyLeft!) {
      tunnel.end(chunk.subarray(0, bodyLeft!));
      return;
    }
    bodyLeft! -= chunk.length;
    if (!client.write(chunk)) {
      up.pause();
      client.once('drain', onDrain);
    }
  };

  tunnel.readDownstream((chunk) => {
    if (bodyLeft !== null) {
      // Relaying a refused upgrade's response; the origin ending completes it.
      if (chunk === null) tunnel.end();
      else relayBody(chunk);
      return;
    }
    if (chunk === null) {
      clearTimeout(timer);
      tunnel.close('upstream_closed', rawError(502, `upstream ${target}: closed without answering the upgrade request`));
      return;
    }
    buf = headBytes.append(buf, chunk);
    for (;;) {
      const r = parseResponseHead(buf, at, max, searched);
      if (r === 'incomplete') {
        searched = blankSearched(buf, at);
        return;
      }
      if (r === 'malformed') {
        clearTimeout(timer);
        tunnel.close('bad_upstream_response', rawError(502, `upstream ${target}: malformed response to the upgrade request`));
        return;
      }
      if (r.status === 101) {
        clearTimeout(timer);
        client.write(buf);
        tunnel.splice(clientHead.length > 0 ? clientHead : null);
        return;
      }
      if (r.status < 200) {
        at = r.end; // interim (103 Early Hints, …): relayed with the final answer
        continue;
      }
      // Refused: relay the answer, send the origin nothing more (the half-close also tells a
      // keep-alive origin to close once it has answered).
      clearTimeout(timer);
      up.end();
      const noBody = headRequest || r.status === 204 || r.status === 304;
      bodyLeft = noBody ? 0 : typeof r.length === 'number' ? r.length : Infinity;
      const headBytes = buf.subarray(0, r.end);
      client.setTimeout(ctx.config.idleTimeoutMs, () => tunnel.close('idle_timeout'));
      if (bodyLeft === 0) {
        tunnel.end(headBytes);
        return;
      }
      client.write(headBytes);
      if (buf.length > r.end) relayBody(buf.subarray(r.end));
      buf = null;
      return;
    }
  });
}
