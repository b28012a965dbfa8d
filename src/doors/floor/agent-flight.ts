/**
 * Requests in flight through a credential door: counted (status, bytes, latency per devbox
 * and config), logged once when they end (ids only: never the token, the secret or the
 * query string), and cut when a change means the devbox may no longer use the door (its
 * policy's toggle turned off, the devbox shut down or moved), as the tracker does for tunnels.
 */
import type http from 'node:http';
import type { Readable } from 'node:stream';
import type { Door } from '../../policy/decision.js';
import { connectionsCut } from '../../metrics.js';
import type { AgentContext } from './agent-server.js';
import { type Admitted, type Refused, sendAgentError } from './agent-admission.js';
import { agentBytes, agentRefusals, agentRequests, agentSeconds } from './agent-metrics.js';
import type { AgentGatewayConfig } from '../../policy/credentials.js';

type Toggle = 'agentGateway' | 'mcpGateway';

function pathOnly(url: string | undefined): string {
  const u = url ?? '';
  const q = u.indexOf('?');
  return (q < 0 ? u : u.slice(0, q)).slice(0, 256);
}

export class AgentFlights {
  private readonly live = new Set<AgentFlight>();
  private readonly stop: () => void;

  constructor(
    readonly ctx: AgentContext,
    readonly door: Door,
    private readonly toggle: Toggle,
  ) {
    this.stop = ctx.engine.onChange(() => this.recheck());
  }

  get size(): number {
    return this.live.size;
  }

  /** After every applied change: a flight its devbox may no longer make is cut. */
  private recheck(): void {
    for (const f of [...this.live]) {
      const policy = this.ctx.engine.policyOf(f.a.token.devbox_id);
      if (policy?.[this.toggle]) continue;
      connectionsCut.labels(this.door, policy === undefined ? 'unknown_client' : 'gateway_disabled').inc();
      f.cut();
    }
  }

  close(): void {
    this.stop();
    for (const f of [...this.live]) f.cut();
  }

  /** A request refused at admission (401/403/503). */
  refused(r: Refused, req: http.IncomingMessage, res: http.ServerResponse, started: number): void {
    sendAgentError(res, r.status, r.reason, r.message);
    req.resume();
    agentRequests.labels(this.door, r.identity.devboxId ?? '', r.config, String(r.status)).inc();
    this.ctx.log.info(
      { event: 'agent_request', door: this.door, devbox: r.identity.devboxId, source: r.identity.source, config: r.config || null, method: req.method, path: pathOnly(req.url), status: r.status, reason: r.reason, duration_ms: ms(started) },
      'agent request refused',
    );
  }

  /** An admitted request the gateway answers itself (bad path, endpoint refused, config broken). */
  answer(a: Admitted<AgentGatewayConfig>, req: http.IncomingMessage, res: http.ServerResponse, started: number, status: number, reason: string, message: string): void {
    sendAgentError(res, status, reason, message);
    req.resume();
    agentRefusals.labels(this.door, a.token.devbox_id, a.config.id, reason).inc();
    agentRequests.labels(this.door, a.token.devbox_id, a.config.id, String(status)).inc();
    this.ctx.log.info({ event: 'agent_request', door: this.door, devbox: a.token.devbox_id, config: a.config.id, token: a.token.id, method: req.method, path: pathOnly(req.url), status, reason, duration_ms: ms(started) }, 'agent request refused');
  }

  /** A request the door answered itself with a body of its own (the MCP hub's JSON-RPC answers). */
  local(a: Admitted<AgentGatewayConfig>, req: http.IncomingMessage, res: http.ServerResponse, started: number, status: number, body: string | null, note: string): void {
    if (body === null) res.writeHead(status, { 'content-length': 0 }).end();
    else res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' }).end(body);
    agentRequests.labels(this.door, a.token.devbox_id, a.config.id, String(status)).inc();
    this.ctx.log.info({ event: 'agent_request', door: this.door, devbox: a.token.devbox_id, config: a.config.id, token: a.token.id, method: req.method, path: pathOnly(req.url), status, answered: note, duration_ms: ms(started) }, 'agent request answered by the gateway');
  }

  crashed(a: Admitted<AgentGatewayConfig>, req: http.IncomingMessage, res: http.ServerResponse, started: number, e: unknown): void {
    this.ctx.log.error({ err: e, door: this.door }, 'agent request failed');
    this.answer(a, req, res, started, 502, 'internal_error', 'internal error');
  }

  /** Registers a forwarded request: ends (and is logged) when the answer is complete or either side goes. */
  open(a: Admitted<AgentGatewayConfig>, req: http.IncomingMessage, res: http.ServerResponse, up: http.ClientRequest, started: number): AgentFlight {
    const f = new AgentFlight(this, a, req, res, up, started);
    this.live.add(f);
    return f;
  }

  /** @internal */
  ended(f: AgentFlight): void {
    this.live.delete(f);
  }
}

function ms(started: number): number {
  return Math.round((performance.now() - started) * 1000) / 1000;
}

export class AgentFlight {
  done = false;
  private status = 0;
  private headMs = 0;
  private bytesOut = 0;
  private bytesIn = 0;

  constructor(
    private readonly flights: AgentFlights,
    readonly a: Admitted<AgentGatewayConfig>,
    private readonly req: http.IncomingMessage,
    private readonly res: http.ServerResponse,
    private readonly up: http.ClientRequest,
    private readonly started: number,
  ) {
    res.on('close', () => {
      if (res.writableFinished) this.finish();
      else {
        up.destroy();
        this.finish('client_closed');
      }
    });
  }

  /** The upstream's response head arrived. */
  head(status: number): void {
    this.status = status;
    this.headMs = ms(this.started);
    agentSeconds.labels(this.flights.door, this.a.token.devbox_id, this.a.config.id).observe(this.headMs / 1000);
  }

  countOut(s: Readable): void {
    s.on('data', (c: Buffer) => (this.bytesOut += c.length));
  }

  /** A body the door read itself (and sends whole). */
  countOutBytes(n: number): void {
    this.bytesOut += n;
  }

  countIn(s: Readable): void {
    s.on('data', (c: Buffer) => (this.bytesIn += c.length));
  }

  /** The upstream failed before its head: 502/504 in JSON. */
  fail(status: number, message: string, code: string): void {
    this.status = status;
    sendAgentError(this.res, status, 'upstream_failed', message);
    this.req.resume();
    this.finish(code);
  }

  /** A change means the devbox may no longer use the door: both sides closed. */
  cut(): void {
    this.up.destroy();
    this.res.destroy();
    this.finish('cut');
  }

  finish(error?: string): void {
    if (this.done) return;
    this.done = true;
    this.flights.ended(this);
    const { door, ctx } = this.flights;
    const devbox = this.a.token.devbox_id;
    const config = this.a.config.id;
    const status = this.status === 0 ? 'error' : String(this.status);
    agentRequests.labels(door, devbox, config, status).inc();
    if (this.bytesOut > 0) agentBytes.labels(door, devbox, config, 'out').inc(this.bytesOut);
    if (this.bytesIn > 0) agentBytes.labels(door, devbox, config, 'in').inc(this.bytesIn);
    ctx.log.info(
      {
        event: 'agent_request',
        door,
        devbox,
        config,
        token: this.a.token.id,
        method: this.req.method,
        path: pathOnly(this.req.url),
        status: this.status || null,
        bytes_out: this.bytesOut,
        bytes_in: this.bytesIn,
        head_ms: this.headMs,
        duration_ms: ms(this.started),
        ...(error ? { error } : {}),
      },
      'agent request',
    );
  }
}
