/**
 * Plain HTTP forwarding (the HTTP proxy's absolute-form requests and the transparent HTTP
 * door): one decision per request, on that request's own host, then the request goes to
 * the address Gate.admit checked, over a keep-alive pool keyed by address:port, with the
 * client's Host header preserved and hop-by-hop headers removed both ways.
 * WebSocket (and other) upgrades become a Tunnel after the same decision.
 */
import http from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { DoorContext } from '../door.js';
import type { Door } from '../policy/decision.js';
import type { Identity } from '../policy/engine.js';
import type { TrackedConnection } from '../egress/tracker.js';
import { bytesTotal, upstreamConnectErrors } from '../metrics.js';
import { endSocket, rawDenial, rawError, sendDenial, sendError } from './denial.js';
import { Tunnel } from './tunnel.js';
import type { Admission } from '../egress/gate.js';

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
    if (listed !== null && listed.has(lower)) continue;
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
    let finished = false;
    const finish = (error?: string) => {
      if (finished) return;
      finished = true;
      if (connectTimer !== null) clearTimeout(connectTimer);
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
    up.on('response', (upRes: http.IncomingMessage) => {
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

  /** An upgrade (WebSocket): same decision, then a raw tunnel carrying the request head. */
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
    const first = Buffer.from(text, 'latin1');
    tunnel.splice(head.length > 0 ? Buffer.concat([first, head]) : first);
  }
}
