/**
 * The admin REST API: Runloop-compatible /v1/network-policies, devbox registration,
 * egress check, /healthz, /metrics and /openapi.json, on one port that speaks HTTP/1.1
 * and HTTP/2 (h2c prior knowledge, or h2/http1.1 by ALPN with TLS).
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import { ConfigError, type GatewayConfig, type HostPort } from '../config.js';
import type { Logger } from 'pino';
import { type DataPlane, localPlane } from './plane.js';
import { Guardrails } from '../policy/guardrails.js';
import { engineOptions } from '../config.js';
import type { DoorContext, RunningDoor } from '../doors/floor/context.js';
import { listenError } from '../doors/floor/listen.js';
import type { ControlStore } from '../store/backend.js';
import { requireAuth } from './auth.js';
import { ApiError, errorBody, registerErrorHandling } from './errors.js';
import { listenDual } from './transport.js';
import { checkCharset, checkWellFormed, decodeUtf8 } from './body.js';
import { networkPolicyRoutes } from './routes/network-policies.js';
import { devboxRoutes } from './routes/devboxes.js';
import { egressCheckRoutes } from './routes/egress-check.js';
import { egressEventRoutes } from './routes/egress-events.js';
import { blueprintRoutes } from './routes/blueprints.js';
import { secretRoutes } from './routes/secrets.js';
import { gatewayConfigRoutes } from './routes/gateway-configs.js';
import { mcpConfigRoutes } from './routes/mcp-configs.js';
import { agentTokenRoutes } from './routes/agent-tokens.js';
import { healthRoutes } from './routes/health.js';
import { apiRequestSeconds, apiRequests, metricsRoutes } from './routes/metrics.js';

export const BODY_LIMIT = 1024 * 1024;

type RawHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void;
const handlers = new WeakMap<FastifyInstance, RawHandler>();

interface QuerySchema {
  properties?: Record<string, { type?: string }>;
}

/**
 * Query strings arrive as text. Bodies are validated without coercion (a "true" string is
 * not a boolean), so query values are converted here, by the types the route's schema
 * declares, before validation. Values that do not convert stay text and fail validation.
 */
function coerceQuery(req: FastifyRequest): void {
  const schema = req.routeOptions.schema?.querystring as QuerySchema | undefined;
  const q = req.query as Record<string, unknown> | undefined;
  if (!schema?.properties || !q) return;
  for (const [k, s] of Object.entries(schema.properties)) {
    const v = q[k];
    if (typeof v !== 'string') continue;
    if (s.type === 'integer' && /^-?\d{1,15}$/.test(v)) q[k] = Number(v);
    else if (s.type === 'boolean' && (v === 'true' || v === 'false')) q[k] = v === 'true';
  }
}

/** What the API runs with: its settings, its log, and the data plane it asks. */
export interface ApiDeps {
  config: GatewayConfig;
  log: Logger;
  plane: DataPlane;
}

/** The store limits the API enforces (settings --max-…-per-account, --max-entries-per-policy). */
export function quotasOf(c: GatewayConfig) {
  return {
    policiesPerAccount: c.maxPoliciesPerAccount,
    entriesPerPolicy: c.maxEntriesPerPolicy,
    entriesPerAccount: c.maxEntriesPerAccount,
    devboxesPerAccount: c.maxDevboxesPerAccount,
    addressesPerAccount: c.maxAddressesPerAccount,
  };
}

/** Builds the Fastify app (not listening). The raw request handler is kept for the transport. */
export async function buildApi(deps: ApiDeps, store: ControlStore): Promise<FastifyInstance> {
  store.setQuotas(quotasOf(deps.config));
  // A write made during a request is applied by the doors before its answer goes out.
  let dirty = false;
  const stopWatch = deps.plane.changed
    ? store.onCommit(() => {
        dirty = true;
      })
    : () => {};
  let handler: RawHandler | null = null;
  const app = Fastify({
    loggerInstance: deps.log.child({ door: 'api' }),
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT,
    return503OnClosing: true,
    // The transport owns the sockets; this server never listens.
    serverFactory: (h: RawHandler) => {
      handler = h;
      return http.createServer();
    },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: true, allErrors: false } },
  }) as unknown as FastifyInstance;
  handlers.set(app, (req, res) => handler!(req, res));

  registerErrorHandling(app);

  // Only JSON in UTF-8 is parsed: every other media type is a 415 (Fastify's text/plain parser goes).
  // An empty JSON body (the SDK's delete() sends Content-Type: application/json, no body) is {}.
  const json = app.getDefaultJsonParser('error', 'error');
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: BODY_LIMIT }, (req, body, done) => {
    let text: string;
    try {
      checkCharset(req.headers['content-type']);
      text = decodeUtf8(body as Buffer);
    } catch (e) {
      return done(e as Error, undefined);
    }
    if (text.trim().length === 0) return done(null, {});
    // The default parser (prototype-poisoning checks) answers synchronously.
    json(req, text, (err, value) => {
      if (err) return done(err, undefined);
      try {
        checkWellFormed(value);
      } catch (e) {
        return done(e as Error, undefined);
      }
      done(null, value);
    });
  });

  app.addHook('preValidation', async (req) => {
    coerceQuery(req);
    if (req.body === undefined && req.method === 'POST') req.body = {};
  });
  app.addHook('onSend', async (req, reply) => {
    // HTTP/2 forbids connection-specific headers; Fastify adds `Connection: close` after body errors.
    if (req.raw.httpVersionMajor === 2) reply.removeHeader('connection');
    // An oversized body with a Content-Length: keep the connection so Node discards the rest of the
    // body instead of resetting the socket under a client still sending (it would never see the 413).
    else if (reply.statusCode === 413 && req.headers['content-length'] !== undefined && Number(req.headers['content-length']) <= 64 * BODY_LIMIT) {
      reply.removeHeader('connection');
    }
  });
  const changed = deps.plane.changed;
  if (changed) {
    app.addHook('onSend', async () => {
      if (!dirty) return;
      dirty = false;
      await changed();
    });
  }
  app.addHook('onClose', async () => stopWatch());
  app.addHook('onResponse', async (req: FastifyRequest, reply: FastifyReply) => {
    const labels = { route: req.routeOptions.url ?? 'unmatched', method: req.method, status: String(reply.statusCode) };
    apiRequests.inc(labels);
    apiRequestSeconds.observe(labels, reply.elapsedTime / 1000);
    req.log.debug({ method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10, http: req.raw.httpVersion }, 'api request');
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'egress-gateway API',
        version: '1',
        description: 'Runloop-compatible network policies, devbox registration and egress checks. ' + 'Errors: { "error": { "code", "message", "status" } }.',
      },
      components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer' } } },
    },
  });

  await app.register(healthRoutes(store, deps.plane.listening, deps.plane.fleet));
  await app.register(metricsRoutes(deps.plane.metrics));
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  await app.register(async (v1) => {
    if (deps.config.follow !== null) refuseWrites(v1, deps.config);
    requireAuth(v1, store);
    await v1.register(networkPolicyRoutes(store, new Guardrails(engineOptions(deps.config).allowPrivate), deps.config.apiPageBytes));
    await v1.register(devboxRoutes(store, deps.config.apiPageBytes, deps.config));
    await v1.register(egressCheckRoutes(store, deps.plane));
    await v1.register(egressEventRoutes(store));
    await v1.register(blueprintRoutes(store));
    await v1.register(secretRoutes(store));
    await v1.register(gatewayConfigRoutes(store));
    await v1.register(mcpConfigRoutes(store));
    await v1.register(agentTokenRoutes(store, deps.config));
  });
  return app;
}

/** A fleet sidecar's API reads; policies and devboxes are written through the control plane. */
function refuseWrites(app: FastifyInstance, config: GatewayConfig): void {
  app.addHook('onRequest', async (req) => {
    if (req.method === 'GET' || req.method === 'HEAD' || req.url.split('?')[0] === '/v1/egress/check') return;
    throw new ApiError(409, 'read_only_follower', `this gateway is a fleet sidecar (host ${config.hostId}, following ${config.follow}); write policies and devboxes through the control plane's API, which publishes them to every sidecar`);
  });
}

function readPem(setting: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new ConfigError(setting, `cannot read ${path}: ${(e as Error).message}`);
  }
}

/** The API in this process, asking the doors' engine directly (tests of the API alone). */
export async function startApi(ctx: DoorContext<'config' | 'engine' | 'log' | 'workerMetrics' | 'readiness'>, store: ControlStore, at: HostPort): Promise<RunningDoor> {
  return serveApi({ config: ctx.config, log: ctx.log, plane: localPlane(ctx.engine, ctx.workerMetrics, ctx.readiness) }, store, at);
}

/** Builds the API and listens on `at` (HTTP/1.1 and h2c, or TLS with ALPN). */
export async function serveApi(deps: ApiDeps, store: ControlStore, at: HostPort): Promise<RunningDoor> {
  const cfg = deps.config;
  const tls = cfg.apiTlsCert && cfg.apiTlsKey ? { cert: readPem('--api-tls-cert', cfg.apiTlsCert), key: readPem('--api-tls-key', cfg.apiTlsKey) } : null;
  const app = await buildApi(deps, store);
  await app.ready();
  const handler = handlers.get(app)!;
  let server: Awaited<ReturnType<typeof listenDual>>;
  try {
    server = await listenDual(handler as Parameters<typeof listenDual>[0], at, {
      tls,
      headerTimeoutMs: cfg.headerTimeoutMs,
      maxHeaderBytes: cfg.maxHeaderBytes,
      idleTimeoutMs: Math.min(cfg.idleTimeoutMs, 300_000),
      bodyLimit: BODY_LIMIT,
      tooLargeBody: JSON.stringify(errorBody(413, 'payload_too_large', 'request body is larger than 1 MiB')),
    });
  } catch (e) {
    await app.close();
    if ((e as NodeJS.ErrnoException).code === 'ERR_OSSL_PEM_NO_START_LINE' || (/PEM|key|certificate/i.test((e as Error).message) && tls)) {
      throw new ConfigError('--api-tls-cert', `cannot use the TLS certificate/key: ${(e as Error).message}`);
    }
    throw listenError('--api', at, e);
  }
  const running = server;
  return {
    name: 'api',
    address: running.address,
    async close(graceMs: number) {
      await running.close(graceMs);
      await app.close();
    },
  };
}
