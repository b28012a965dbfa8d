/**
 * The agent gateway (--agent-gateway): a devbox calls an external API with its gateway token
 * as the API key; the request is admitted per request (agent-admission.ts), the token and any
 * credential the devbox sent are stripped, the real credential and the config's custom headers
 * applied, and the request streamed to `endpoint` + path (+ query). Bodies flow both ways as
 * they arrive (chunked uploads, SSE answers): nothing is buffered whole.
 */
import type http from 'node:http';
import type { HostPort } from '../../config.js';
import type { AgentGatewayConfig } from '../../policy/credentials.js';
import type { RunningDoor } from '../floor/context.js';
import { type AgentContext, startAgentServer } from '../floor/agent-server.js';
import { type Admitted, admitAgent } from '../floor/agent-admission.js';
import { AgentUpstream, type UpstreamAddress, hasDotSegment, responseHeaders } from '../floor/agent-upstream.js';
import { AgentFlights } from '../floor/agent-flight.js';

const DOOR = 'agent-gateway' as const;

export async function startAgentGatewayDoor(ctx: AgentContext, at: HostPort): Promise<RunningDoor> {
  const upstream = new AgentUpstream(ctx, DOOR);
  const flights = new AgentFlights(ctx, DOOR, 'agentGateway');
  return startAgentServer(ctx, at, {
    door: DOOR,
    setting: '--agent-gateway',
    onRequest: (req, res) => handle(ctx, upstream, flights, req, res),
    onClose: () => {
      flights.close();
      upstream.close();
    },
  });
}

function handle(ctx: AgentContext, upstream: AgentUpstream, flights: AgentFlights, req: http.IncomingMessage, res: http.ServerResponse): void {
  const started = performance.now();
  const a = admitAgent<AgentGatewayConfig>(ctx, DOOR, req);
  if (!a.ok) {
    flights.refused(a, req, res, started);
    return;
  }
  const path = req.url ?? '/';
  if (!path.startsWith('/') || hasDotSegment(path)) {
    flights.answer(a, req, res, started, 400, 'bad_path', 'the request path must be origin-form without "." or ".." segments');
    return;
  }
  const ep = upstream.endpoint(a.config.endpoint);
  if (ep === null) {
    flights.answer(a, req, res, started, 502, 'bad_endpoint', "the config's endpoint is not an http(s) URL");
    return;
  }
  const addr = upstream.address(a.identity, ep, a.token.account_id, a.decision);
  if (addr instanceof Promise) addr.then((r) => forward(ctx, upstream, flights, a, req, res, started, r, path)).catch((e: unknown) => flights.crashed(a, req, res, started, e));
  else forward(ctx, upstream, flights, a, req, res, started, addr, path);
}

function forward(ctx: AgentContext, upstream: AgentUpstream, flights: AgentFlights, a: Admitted<AgentGatewayConfig>, req: http.IncomingMessage, res: http.ServerResponse, started: number, addr: UpstreamAddress, path: string): void {
  if (!addr.ok) {
    flights.answer(a, req, res, started, addr.status, addr.reason, addr.message);
    return;
  }
  if (res.destroyed) return;
  const ep = upstream.endpoint(a.config.endpoint)!;
  const own = upstream.ownHeaders(a, ep, ctx.credentials!);
  if (typeof own === 'string') {
    flights.answer(a, req, res, started, 502, 'bad_config', own);
    return;
  }
  const headers = [...upstream.forwardHeaders(req.rawHeaders, a), ...own];
  const up = upstream.request(ep, addr.address, req.method ?? 'GET', ep.basePath + path, headers);
  const flight = flights.open(a, req, res, up, started);
  up.on('error', (e: NodeJS.ErrnoException) => {
    if (flight.done) return;
    if (!res.headersSent) {
      const f = upstream.failure(e);
      flight.fail(f.status, f.message, e.code ?? 'error');
    } else {
      res.destroy();
      flight.finish(e.code ?? 'error');
    }
  });
  up.on('response', (upRes: http.IncomingMessage) => {
    flight.head(upRes.statusCode ?? 502);
    res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, responseHeaders(upRes.rawHeaders));
    // A streamed answer (SSE) may wait for its first event: the head goes now. Any other head
    // leaves with the first body chunk (one write, one packet). Each chunk is written as it arrives.
    if ((upRes.headers['content-type'] ?? '').startsWith('text/event-stream')) res.flushHeaders();
    flight.countIn(upRes);
    upRes.pipe(res);
    upRes.on('error', () => res.destroy());
  });
  flight.countOut(req);
  req.pipe(up);
}
