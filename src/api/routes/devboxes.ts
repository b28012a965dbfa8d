/**
 * /v1/devboxes: register the devboxes whose traffic the gateway judges, with their source
 * addresses and policy; proxy credentials are handed out once, at creation.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { Devbox, DevboxStatus } from '../../policy/model.js';
import type { GatewayConfig } from '../../config.js';
import type { AgentSpecsInput } from '../../store/agents.js';
import { devboxAgentFields, devboxAgentViewFields } from '../agent-schemas.js';
import { checkEnvName } from '../agent-validate.js';
import { agentEnvironment, devboxAgentSpecs } from '../agent-views.js';
import { agentUrl } from './agent-tokens.js';
import { badRequest } from '../errors.js';
import type { ControlStore } from '../../store/backend.js';
import { notFound } from '../errors.js';
import { DEFAULT_LIST_LIMIT, devboxCreateBody, devboxListQuery, devboxListView, devboxUpdateBody, devboxView as devboxViewSchema, emptyBody, errorResponses, idParams } from '../schemas.js';
import { checkAddresses } from '../validate.js';
import { devboxView as baseView } from '../views.js';

/** The devbox view with its gateway_specs / mcp_specs when it has some. */
const devboxView = (d: Devbox) => ({ ...baseView(d), ...devboxAgentSpecs(d) });
const viewSchema = { ...devboxViewSchema, properties: { ...devboxViewSchema.properties, ...devboxAgentViewFields } };
const createBodySchema = { ...devboxCreateBody, properties: { ...devboxCreateBody.properties, ...devboxAgentFields } };
const listViewSchema = { ...devboxListView, properties: { ...devboxListView.properties, devboxes: { type: 'array', items: viewSchema } } };

/**
 * The gateways / mcp of a create as store specs: env names checked, and every variable the
 * devbox will get ({P}_URL, {P}_KEY, the MCP names, RL_MCP_URL) distinct.
 */
function agentSpecs(b: CreateBody): AgentSpecsInput | null {
  const gateways = Object.entries(b.gateways ?? {});
  const mcp = Object.entries(b.mcp ?? {});
  if (gateways.length === 0 && mcp.length === 0) return null;
  const vars = new Map<string, string>();
  const claim = (name: string, field: string) => {
    const prev = vars.get(name);
    if (prev !== undefined) throw badRequest(`${field}: the environment variable ${name} would also be set by ${prev}`);
    vars.set(name, field);
  };
  if (mcp.length > 0) claim('RL_MCP_URL', 'mcp');
  const specs: AgentSpecsInput = { gateways: [], mcp: [] };
  for (const [env, s] of gateways) {
    checkEnvName(`gateways.${env}`, env);
    claim(`${env}_URL`, `gateways.${env}`);
    claim(`${env}_KEY`, `gateways.${env}`);
    specs.gateways.push({ env, config: s.gateway, secret: s.secret });
  }
  for (const [env, s] of mcp) {
    checkEnvName(`mcp.${env}`, env);
    claim(env, `mcp.${env}`);
    specs.mcp.push({ env, config: s.mcp_config, secret: s.secret });
  }
  return specs;
}

interface CreateBody {
  name?: string | null;
  metadata?: Record<string, string> | null;
  launch_parameters?: { network_policy_id?: string | null } | null;
  network?: { addresses?: string[]; host_id?: string | null } | null;
  blueprint_id?: string | null;
  gateways?: Record<string, { gateway: string; secret: string }> | null;
  mcp?: Record<string, { mcp_config: string; secret: string }> | null;
}

interface UpdateBody {
  name?: string | null;
  metadata?: Record<string, string> | null;
  launch_parameters?: { network_policy_id?: string | null } | null;
}

interface ListQuery {
  status?: DevboxStatus;
  host_id?: string;
  limit?: number;
  starting_after?: string;
  include_total_count?: boolean;
}

/** `pageBytes`: the byte budget of one list page (--api-page-bytes). */
export const devboxRoutes =
  (store: ControlStore, pageBytes?: number, config?: GatewayConfig): FastifyPluginAsync =>
  async (app) => {
    const tags = ['devboxes'];
    const security = [{ bearerAuth: [] }];

    app.post<{ Body: CreateBody }>(
      '/v1/devboxes',
      {
        schema: {
          tags,
          security,
          operationId: 'createDevbox',
          summary: 'Register a devbox: its source addresses and network policy, and gateways / mcp (a token minted for each). The response carries proxy_credentials and agent_environment, shown only once.',
          body: createBodySchema,
          response: { 200: viewSchema, ...errorResponses(400, 401, 403, 404, 409, 413, 415, 503) },
        },
      },
      async (req) => {
        const b = req.body;
        const addresses = checkAddresses(b.network?.addresses ?? []);
        const agents = agentSpecs(b);
        const urls = agents && config ? { gateway: agents.gateways.length > 0 ? agentUrl(config, 'gateway') : '', mcp: agents.mcp.length > 0 ? agentUrl(config, 'mcp') : '' } : null;
        const { devbox, password, agentTokens } = await store.devboxes.create(req.accountId, {
          name: b.name ?? null,
          metadata: b.metadata ?? {},
          networkPolicyId: b.launch_parameters?.network_policy_id ?? null,
          addresses,
          blueprintId: b.blueprint_id ?? null,
          hostId: b.network?.host_id ?? null,
          agents,
        });
        req.log.info({ event: 'devbox_created', account: req.accountId, devbox: devbox.id, policy: devbox.network_policy_id, blueprint: devbox.blueprint_id, host: devbox.host_id ?? null, addresses }, 'devbox registered');
        if (agentTokens.length > 0) req.log.info({ event: 'agent_token_minted', account: req.accountId, devbox: devbox.id, tokens: agentTokens.map((t) => ({ kind: t.kind, env: t.env, config: t.config.id, secret: t.secretId })) }, 'agent tokens minted at devbox creation');
        return { ...devboxView(devbox), proxy_credentials: { username: devbox.id, password }, ...(urls ? { agent_environment: agentEnvironment(agentTokens, urls) } : {}) };
      },
    );

    app.get<{ Querystring: ListQuery }>(
      '/v1/devboxes',
      {
        schema: {
          tags,
          security,
          operationId: 'listDevboxes',
          summary: 'List devboxes (status and host_id filter).',
          querystring: devboxListQuery,
          response: { 200: listViewSchema, ...errorResponses(400, 401) },
        },
      },
      async (req) => {
        const q = req.query;
        const includeTotal = q.include_total_count ?? true;
        const page = await store.devboxes.list(req.accountId, {
          status: q.status,
          hostId: q.host_id,
          limit: q.limit ?? DEFAULT_LIST_LIMIT,
          startingAfter: q.starting_after,
          includeTotalCount: includeTotal,
          maxBytes: pageBytes,
        });
        return { devboxes: page.items.map(devboxView), has_more: page.hasMore, ...(includeTotal ? { total_count: page.totalCount } : {}) };
      },
    );

    app.get<{ Params: { id: string } }>(
      '/v1/devboxes/:id',
      {
        schema: {
          tags,
          security,
          operationId: 'getDevbox',
          summary: 'Get a devbox.',
          params: idParams,
          response: { 200: viewSchema, ...errorResponses(401, 404) },
        },
      },
      async (req) => {
        const d = await store.devboxes.get(req.accountId, req.params.id);
        if (!d) throw notFound(`devbox ${req.params.id} not found`);
        return devboxView(d);
      },
    );

    app.post<{ Params: { id: string }; Body: UpdateBody | undefined }>(
      '/v1/devboxes/:id',
      {
        schema: {
          tags,
          security,
          operationId: 'updateDevbox',
          summary: "Update a devbox's name, metadata or network policy (launch_parameters.network_policy_id: null detaches it).",
          params: idParams,
          body: devboxUpdateBody,
          response: { 200: viewSchema, ...errorResponses(400, 401, 404, 413, 415, 503) },
        },
      },
      async (req) => {
        const b = req.body ?? {};
        const lp = b.launch_parameters;
        const d = await store.devboxes.update(req.accountId, req.params.id, {
          name: b.name ?? undefined,
          metadata: b.metadata ?? undefined,
          networkPolicyId: lp && 'network_policy_id' in lp ? (lp.network_policy_id ?? null) : undefined,
        });
        req.log.info({ event: 'devbox_updated', account: req.accountId, devbox: d.id, policy: d.network_policy_id }, 'devbox updated');
        return devboxView(d);
      },
    );

    app.post<{ Params: { id: string } }>(
      '/v1/devboxes/:id/shutdown',
      {
        schema: {
          tags,
          security,
          operationId: 'shutdownDevbox',
          summary: 'Shut a devbox down: its traffic is no longer admitted and its addresses are freed.',
          params: idParams,
          body: emptyBody,
          response: { 200: viewSchema, ...errorResponses(401, 404, 415, 503) },
        },
      },
      async (req) => {
        const d = await store.devboxes.shutdown(req.accountId, req.params.id);
        req.log.info({ event: 'devbox_shutdown', account: req.accountId, devbox: d.id }, 'devbox shut down');
        return devboxView(d);
      },
    );
  };
