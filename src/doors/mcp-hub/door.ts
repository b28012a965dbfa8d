/**
 * The MCP hub (--mcp-hub): MCP Streamable HTTP on both sides. A devbox's MCP client talks to
 * the hub with its MCP token; the hub admits each request like the agent gateway does, applies
 * the config's real credential, and relays to the config's endpoint: POST (JSON-RPC, answered
 * as JSON or SSE), GET (the server's stream), DELETE (end the session), with `Mcp-Session-Id`,
 * `MCP-Protocol-Version` and `Last-Event-ID` passed both ways. Tool access is the config's
 * `allowed_tools` (messages.ts): refused calls never reach the upstream. Every tool call is
 * counted and logged; refusals go to the denial record (`/v1/egress/events`).
 */
import type http from 'node:http';
import type { HostPort } from '../../config.js';
import type { McpConfig } from '../../policy/credentials.js';
import { denial } from '../../policy/decision.js';
import type { RunningDoor } from '../floor/context.js';
import { type AgentContext, startAgentServer } from '../floor/agent-server.js';
import { type Admitted, admitAgent, sendAgentError } from '../floor/agent-admission.js';
import { AgentUpstream, type Endpoint, type UpstreamAddress } from '../floor/agent-upstream.js';
import { AgentFlights } from '../floor/agent-flight.js';
import { agentRefusals, mcpToolCalls } from '../floor/agent-metrics.js';
import { PARSE_ERROR, type Plan, planRequest, rewriteBody } from './messages.js';
import { type ToolRules, rulesFor } from './rules.js';
import { SseRewriter } from './sse.js';

const DOOR = 'mcp-hub' as const;
/** A JSON-RPC request body from a devbox, read whole to be judged. */
const MAX_REQUEST = 4 * 1024 * 1024;
/** A JSON (not SSE) answer from the upstream, read whole to be rewritten. */
const MAX_RESPONSE = 16 * 1024 * 1024;
/** Request headers of the MCP transport passed upstream (everything else stays behind). */
const PASSED_UP = new Set(['accept', 'content-type', 'mcp-session-id', 'mcp-protocol-version', 'last-event-id', 'user-agent']);
/** Response headers passed back. */
const PASSED_DOWN = new Set(['content-type', 'mcp-session-id', 'mcp-protocol-version', 'cache-control', 'retry-after', 'www-authenticate']);

export async function startMcpHubDoor(ctx: AgentContext, at: HostPort): Promise<RunningDoor> {
  const upstream = new AgentUpstream(ctx, DOOR);
  const flights = new AgentFlights(ctx, DOOR, 'mcpGateway');
  return startAgentServer(ctx, at, {
    door: DOOR,
    setting: '--mcp-hub',
    onRequest: (req, res) => handle(ctx, upstream, flights, req, res),
    onClose: () => {
      flights.close();
      upstream.close();
    },
  });
}

interface Exchange {
  ctx: AgentContext;
  upstream: AgentUpstream;
  flights: AgentFlights;
  a: Admitted<McpConfig>;
  rules: ToolRules;
  req: http.IncomingMessage;
  res: http.ServerResponse;
  started: number;
}

function handle(ctx: AgentContext, upstream: AgentUpstream, flights: AgentFlights, req: http.IncomingMessage, res: http.ServerResponse): void {
  const started = performance.now();
  const a = admitAgent<McpConfig>(ctx, DOOR, req);
  if (!a.ok) {
    flights.refused(a, req, res, started);
    return;
  }
  const x: Exchange = { ctx, upstream, flights, a, rules: rulesFor(a.config), req, res, started };
  if (req.method === 'POST') readBody(x);
  else if (req.method === 'GET' || req.method === 'DELETE') send(x, null);
  else {
    res.setHeader('Allow', 'GET, POST, DELETE');
    flights.answer(a, req, res, started, 405, 'method_not_allowed', 'the MCP hub takes POST, GET and DELETE');
  }
}

function readBody(x: Exchange): void {
  const parts: Buffer[] = [];
  let size = 0;
  let over = false;
  x.req.on('data', (c: Buffer) => {
    if (over) return;
    size += c.length;
    if (size > MAX_REQUEST) {
      over = true;
      x.flights.answer(x.a, x.req, x.res, x.started, 413, 'body_too_large', `a JSON-RPC body may be at most ${MAX_REQUEST} bytes`);
      return;
    }
    parts.push(c);
  });
  x.req.on('end', () => {
    if (over) return;
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(parts).toString('utf8'));
    } catch {
      agentRefusals.labels(DOOR, x.a.token.devbox_id, x.a.config.id, 'parse_error').inc();
      x.flights.local(x.a, x.req, x.res, x.started, 400, JSON.stringify(PARSE_ERROR), 'parse_error');
      return;
    }
    const plan = planRequest(body, x.rules);
    account(x, plan);
    if (plan.forward === null) {
      const answer = plan.batch ? plan.answers : (plan.answers[0] ?? null);
      x.flights.local(x.a, x.req, x.res, x.started, answer === null ? 202 : 200, answer === null ? null : JSON.stringify(answer), 'refused');
      return;
    }
    send(x, Buffer.from(JSON.stringify(plan.forward)));
  });
  x.req.on('error', () => x.res.destroy());
}

/** Counts and logs every tool call, and records refusals against the devbox (`/v1/egress/events`). */
function account(x: Exchange, plan: Plan): void {
  const devbox = x.a.token.devbox_id;
  const config = x.a.config.id;
  for (const r of plan.refused) agentRefusals.labels(DOOR, devbox, config, r).inc();
  for (const c of plan.calls) {
    mcpToolCalls.labels(devbox, config, c.allowed ? c.tool : '(refused)', c.allowed ? 'allow' : 'deny').inc();
    x.ctx.log.info({ event: 'mcp_tool_call', door: DOOR, devbox, config, token: x.a.token.id, tool: c.tool, decision: c.allowed ? 'allow' : 'deny', ...(c.why ? { why: c.why } : {}) }, c.allowed ? 'MCP tool call' : 'MCP tool call refused');
    if (!c.allowed) x.ctx.gate.record(x.a.identity, DOOR, denial('tool_refused', c.tool, x.a.decision), 0);
  }
  if (plan.refused.some((r) => r === 'method_refused')) x.ctx.gate.record(x.a.identity, DOOR, denial('method_refused', x.rules.service, x.a.decision), 0);
}

function send(x: Exchange, body: Buffer | null): void {
  const ep = x.upstream.endpoint(x.a.config.endpoint);
  if (ep === null) {
    x.flights.answer(x.a, x.req, x.res, x.started, 502, 'bad_endpoint', "the config's endpoint is not an http(s) URL");
    return;
  }
  const addr = x.upstream.address(x.a.identity, ep, x.a.token.account_id, x.a.decision);
  if (addr instanceof Promise) addr.then((r) => relay(x, ep, r, body)).catch((e: unknown) => x.flights.crashed(x.a, x.req, x.res, x.started, e));
  else relay(x, ep, addr, body);
}

function relay(x: Exchange, ep: Endpoint, addr: UpstreamAddress, body: Buffer | null): void {
  const { a, req, res } = x;
  if (!addr.ok) {
    x.flights.answer(a, req, res, x.started, addr.status, addr.reason, addr.message);
    return;
  }
  if (res.destroyed) return;
  const own = x.upstream.ownHeaders(a, ep, x.ctx.credentials!);
  if (typeof own === 'string') {
    x.flights.answer(a, req, res, x.started, 502, 'bad_config', own);
    return;
  }
  const headers: string[] = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (PASSED_UP.has(req.rawHeaders[i]!.toLowerCase())) headers.push(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
  if (body !== null) headers.push('Content-Length', String(body.length));
  headers.push(...own);
  const up = x.upstream.request(ep, addr.address, req.method ?? 'GET', ep.basePath === '' ? '/' : ep.basePath, headers);
  const flight = x.flights.open(a, req, res, up, x.started);
  up.on('error', (e: NodeJS.ErrnoException) => {
    if (flight.done) return;
    if (!res.headersSent) {
      const f = x.upstream.failure(e);
      flight.fail(f.status, f.message, e.code ?? 'error');
    } else {
      res.destroy();
      flight.finish(e.code ?? 'error');
    }
  });
  up.on('response', (upRes: http.IncomingMessage) => {
    const status = upRes.statusCode ?? 502;
    flight.head(status);
    flight.countIn(upRes);
    const out: string[] = [];
    for (let i = 0; i < upRes.rawHeaders.length; i += 2) if (PASSED_DOWN.has(upRes.rawHeaders[i]!.toLowerCase())) out.push(upRes.rawHeaders[i]!, upRes.rawHeaders[i + 1]!);
    const type = (upRes.headers['content-type'] ?? '').toLowerCase();
    upRes.on('error', () => res.destroy());
    if (type.startsWith('text/event-stream')) {
      res.writeHead(status, out);
      res.flushHeaders();
      const sse = new SseRewriter((m) => rewriteBody(m, x.rules));
      sse.on('error', () => {
        up.destroy();
        res.destroy();
      });
      upRes.pipe(sse).pipe(res);
    } else if (type.startsWith('application/json')) {
      relayJson(x, upRes, status, out);
    } else if (status >= 200 && status < 300) {
      // A successful answer the hub cannot read is not relayed (it could carry a tools list);
      // an empty one (202 to a notification, 200 to DELETE) is.
      relayEmptyOnly(x, upRes, status, out);
    } else {
      res.writeHead(status, out);
      upRes.pipe(res);
    }
  });
  if (body !== null) flight.countOutBytes(body.length);
  up.end(body ?? undefined);
}

function relayEmptyOnly(x: Exchange, upRes: http.IncomingMessage, status: number, headers: string[]): void {
  let size = 0;
  upRes.on('data', (c: Buffer) => {
    size += c.length;
    if (size > 0) upRes.destroy();
  });
  const done = () => {
    if (x.res.headersSent) return;
    if (size > 0) sendAgentError(x.res, 502, 'upstream_failed', `the upstream answered ${status} with ${JSON.stringify(String(upRes.headers['content-type'] ?? 'no content type').slice(0, 64))}, not JSON or SSE`);
    else x.res.writeHead(status, [...headers, 'Content-Length', '0']).end();
  };
  upRes.on('end', done);
  upRes.on('close', done);
}

function relayJson(x: Exchange, upRes: http.IncomingMessage, status: number, headers: string[]): void {
  const parts: Buffer[] = [];
  let size = 0;
  upRes.on('data', (c: Buffer) => {
    size += c.length;
    if (size > MAX_RESPONSE) {
      upRes.destroy();
      sendAgentError(x.res, 502, 'upstream_failed', 'the upstream answer is too large');
      return;
    }
    parts.push(c);
  });
  upRes.on('end', () => {
    if (size > MAX_RESPONSE || x.res.headersSent) return;
    let text = Buffer.concat(parts).toString('utf8');
    if (text !== '') {
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        // Not JSON after all: not relayed unread (it could carry a tools list).
        sendAgentError(x.res, 502, 'upstream_failed', 'the upstream answer is not JSON');
        return;
      }
      const rewritten = rewriteBody(body, x.rules);
      text = rewritten === null ? '' : JSON.stringify(rewritten);
    }
    x.res.writeHead(status, [...headers, 'Content-Length', String(Buffer.byteLength(text))]);
    x.res.end(text);
  });
}
