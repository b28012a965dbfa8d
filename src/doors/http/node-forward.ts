/**
 * The node:http path's forwarding (requests the raw front hands over: a body, HTTP/1.0, an
 * unusual method or head): one decision per request, on that request's own host, then the
 * request goes to the address Gate.admit checked, over a keep-alive http.Agent keyed by
 * address:port, with the client's Host header preserved and hop-by-hop headers removed both ways.
 */
import http from 'node:http';
import type net from 'node:net';
import type { HttpContext } from './flight.js';
import type { Door } from '../../policy/decision.js';
import type { Identity } from '../../policy/engine.js';
import { upstreamConnectErrors } from '../../metrics.js';
import { sendDenial, sendError } from '../floor/denial.js';
import type { Admission } from '../floor/gate.js';
import { filterHeaders, hasHost } from './headers.js';
import type { HttpTarget } from './target.js';
import { HttpCore, type Refusal, TOO_MANY, admissionRefusal, upstreamFailure } from './flight.js';

/** A refusal on a ServerResponse (a 403 denial or an error). */
export function sendRefusal(res: http.ServerResponse, r: Refusal, port: number): void {
  if (r.status === 403) sendDenial(res, r.decision, port);
  else sendError(res, r.status, r.message);
}

export class HttpForwarder {
  readonly agent: http.Agent;
  private readonly core: HttpCore;

  constructor(
    private readonly ctx: HttpContext,
    private readonly door: Door,
  ) {
    this.core = new HttpCore(ctx, door);
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
      sendRefusal(res, admissionRefusal(admission, t.host), t.port);
      return;
    }
    if (res.destroyed) return;
    let up: http.ClientRequest | null = null;
    const flight = this.core.open(identity, t.host, t.port, admission.decision, () => {
      up?.destroy();
      res.socket?.destroy();
    });
    if (flight === null) {
      sendRefusal(res, TOO_MANY, t.port);
      return;
    }
    const headers = filterHeaders(req.rawHeaders);
    if (!hasHost(headers)) headers.push('Host', t.hostHeader);
    const request = http.request({
      host: admission.address,
      port: t.port,
      method: req.method,
      path: t.path,
      headers,
      agent: this.agent,
      setHost: false,
    });
    up = request;
    let connectTimer: NodeJS.Timeout | null = null;
    let responseTimer: NodeJS.Timeout | null = null;
    const client = req.socket;
    // A FIN while this request waits (nothing pipelined after it): the client gave up on it.
    const onClientEnd = () => {
      if (flight.done) return;
      request.destroy();
      finish('client_closed');
      client.destroy();
    };
    client.once('end', onClientEnd);
    const finish = (error?: string) => {
      if (flight.done) return;
      client.off('end', onClientEnd);
      if (connectTimer !== null) clearTimeout(connectTimer);
      if (responseTimer !== null) clearTimeout(responseTimer);
      flight.finish(error);
    };
    request.on('socket', (s: net.Socket) => {
      flight.attach(s);
      if (s.connecting) {
        connectTimer = setTimeout(() => {
          connectTimer = null;
          request.destroy(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' }));
        }, ctx.config.connectTimeoutMs);
        s.once('connect', () => {
          if (connectTimer !== null) clearTimeout(connectTimer);
          connectTimer = null;
        });
      }
    });
    // The agent's `timeout` arms the socket's idle timer; node re-emits it on the request.
    request.on('timeout', () => request.destroy(Object.assign(new Error('upstream idle'), { code: 'ETIMEDOUT' })));
    request.on('error', (e: NodeJS.ErrnoException) => {
      if (flight.done) return; // the client went away first and we destroyed the request
      const code = e.code ?? 'ERROR';
      if (!res.headersSent) {
        if (flight.silent) upstreamConnectErrors.labels(door, code).inc();
        sendRefusal(res, upstreamFailure(t.host, t.port, code), t.port);
      } else {
        res.destroy();
      }
      finish(code);
    });
    // The request (and its body) went out: the origin has --response-timeout-ms to answer.
    request.on('finish', () => {
      if (flight.done) return;
      responseTimer = setTimeout(() => {
        responseTimer = null;
        request.destroy(Object.assign(new Error('no response'), { code: 'ETIMEDOUT' }));
      }, ctx.config.responseTimeoutMs);
    });
    request.on('response', (upRes: http.IncomingMessage) => {
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
        request.destroy();
        finish('client_closed');
      } else finish();
    });
    req.pipe(request);
  }
}
