/**
 * The node:http path's forwarding (requests the raw front hands over: a body, HTTP/1.0, an
 * unusual method or head): one decision per request, on that request's own host, then the
 * request goes to the address Gate.admit checked, over a keep-alive http.Agent keyed by
 * address:port, with the client's Host header preserved and hop-by-hop headers removed both ways.
 */
import http from 'node:http';
import type net from 'node:net';
import type { DoorContext } from '../floor/context.js';
import type { Door } from '../../policy/decision.js';
import type { Identity } from '../../policy/engine.js';
import type { TrackedConnection } from '../floor/tracker.js';
import { bytesTotal, upstreamConnectErrors } from '../../metrics.js';
import { sendDenial, sendError } from '../floor/denial.js';
import type { Admission } from '../floor/gate.js';
import { filterHeaders, hasHost } from './headers.js';
import type { HttpTarget } from './target.js';

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
}
