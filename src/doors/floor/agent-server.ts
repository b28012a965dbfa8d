/**
 * The listener both credential doors (agent gateway, MCP hub) run: node:http behind a raw
 * listener that admits every client socket with the source limiter, the shared stall budget
 * (`--header-timeout-ms` for a request head, `--idle-timeout-ms` for a silent socket), and
 * malformed or slow heads answered in JSON and counted, as the HTTP door does.
 */
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { HostPort } from '../../config.js';
import type { Door } from '../../policy/decision.js';
import { protocolErrors } from '../../metrics.js';
import type { DoorContext, RunningDoor } from './context.js';
import { closeServer } from './listen.js';
import { answerClientError, httpBehindClosable, listenHttpBehind } from './http-behind.js';
import { rawError } from './denial.js';

/** The parts of the gateway the credential doors use (their registry lines' `needs`). */
export const AGENT_NEEDS = ['config', 'engine', 'gate', 'resolver', 'sourceLimit', 'log', 'credentials'] as const;
export type AgentContext = DoorContext<(typeof AGENT_NEEDS)[number]>;

export interface AgentServerOptions {
  door: Door;
  setting: string;
  onRequest(req: http.IncomingMessage, res: http.ServerResponse): void;
  /** Called once the listener is closed (agents, timers). */
  onClose?(): void;
}

export async function startAgentServer(ctx: AgentContext, at: HostPort, opts: AgentServerOptions): Promise<RunningDoor> {
  const cfg = ctx.config;
  const server = http.createServer({
    maxHeaderSize: cfg.maxHeaderBytes,
    headersTimeout: cfg.headerTimeoutMs,
    // Bodies stream for as long as they flow (uploads, SSE); silence is the idle time-out.
    requestTimeout: 0,
    keepAliveTimeout: Math.min(cfg.idleTimeoutMs, 120_000),
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(cfg.headerTimeoutMs / 4))),
    noDelay: true,
  });
  server.timeout = cfg.idleTimeoutMs;
  server.on('timeout', (s: net.Socket) => s.destroy());
  const sockets = new Set<net.Socket>();
  const listener = net.createServer({ noDelay: true, allowHalfOpen: true }, (s) => {
    if (!ctx.sourceLimit.admit(s, opts.door)) return;
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    server.emit('connection', s);
  });
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (draining) res.shouldKeepAlive = false;
    try {
      opts.onRequest(req, res);
    } catch (e) {
      ctx.log.error({ err: e, door: opts.door }, 'request handling failed');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":{"code":"internal_error","message":"internal error"}}\n');
      else res.destroy();
    }
  });
  server.on('upgrade', (_req: http.IncomingMessage, socket: Duplex) => {
    protocolErrors.labels(opts.door, 'upgrade_refused').inc();
    socket.on('error', () => socket.destroy());
    socket.end(rawError(400, 'upgrades are not accepted here'));
  });
  server.on('connect', (_req: http.IncomingMessage, socket: Duplex) => {
    protocolErrors.labels(opts.door, 'bad_request').inc();
    socket.on('error', () => socket.destroy());
    socket.end(rawError(405, 'CONNECT is not accepted here'));
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => answerClientError(opts.door, err, socket));
  let draining = false;
  const address = await listenHttpBehind(listener, server, at, opts.setting, (e) => ctx.log.error({ err: e, door: opts.door }, 'listener error'));
  const closable = httpBehindClosable(listener, server, () => {
    draining = true;
  });
  return { name: opts.door, address, close: (graceMs) => closeServer(closable, sockets, graceMs, opts.onClose) };
}
