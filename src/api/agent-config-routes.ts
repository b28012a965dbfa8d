/**
 * The five routes gateway configs and MCP configs share (create, list, retrieve, update,
 * delete), built for one kind: routes/gateway-configs.ts and routes/mcp-configs.ts register them.
 */
import type { FastifyInstance } from 'fastify';
import type { AgentGatewayConfig, AuthMechanism } from '../policy/credentials.js';
import type { AgentConfigPatch, AgentConfigRepository, AgentKind } from '../store/agents.js';
import { notFound } from './errors.js';
import { DEFAULT_LIST_LIMIT, emptyBody, errorResponses, idParams } from './schemas.js';
import { checkName } from './validate.js';
import { checkAllowedTools, checkAuthMechanism, checkCustomHeaders, checkEndpoint, checkMcpName } from './agent-validate.js';

export interface ConfigBody {
  name?: string | null;
  endpoint?: string | null;
  auth_mechanism?: { type: string; key?: string | null } | null;
  custom_headers?: { name: string; value?: string | null; secret?: string | null }[] | null;
  description?: string | null;
  allowed_tools?: string[] | null;
}

interface ListQuery {
  name?: string;
  id?: string;
  search?: string;
  limit?: number;
  starting_after?: string;
  include_total_count?: boolean;
}

export interface ConfigRouteSpec<T extends AgentGatewayConfig> {
  kind: AgentKind;
  /** URL segment: gateway-configs | mcp-configs */
  path: string;
  /** The list's key: gateway_configs | mcp_configs */
  listKey: string;
  /** Word in operation ids: GatewayConfig | McpConfig */
  op: string;
  repo: AgentConfigRepository<T>;
  view: (c: T) => object;
  schemas: { view: object; listView: object; createBody: object; updateBody: object; listQuery: object };
}

const DEFAULT_MCP_AUTH: AuthMechanism = { type: 'bearer' };

export function registerConfigRoutes<T extends AgentGatewayConfig>(app: FastifyInstance, s: ConfigRouteSpec<T>): void {
  const tags = [s.path];
  const security = [{ bearerAuth: [] }];
  const word = s.kind === 'gateway' ? 'gateway config' : 'MCP config';
  const base = `/v1/${s.path}`;
  const name = (raw: string) => {
    const n = checkName('name', raw);
    return s.kind === 'mcp' ? checkMcpName(n) : n;
  };

  app.post<{ Body: ConfigBody }>(base, { schema: { tags, security, operationId: `create${s.op}`, summary: `Create a ${word}.`, body: s.schemas.createBody, response: { 200: s.schemas.view, ...errorResponses(400, 401, 403, 404, 413, 415, 503) } } }, async (req) => {
    const b = req.body;
    const mechanism = b.auth_mechanism ? checkAuthMechanism('auth_mechanism', b.auth_mechanism) : DEFAULT_MCP_AUTH;
    const c = await s.repo.create(req.accountId, {
      name: name(b.name!),
      endpoint: checkEndpoint(b.endpoint!),
      auth_mechanism: mechanism,
      custom_headers: checkCustomHeaders(b.custom_headers ?? [], mechanism),
      description: b.description ?? null,
      ...(s.kind === 'mcp' ? { allowed_tools: checkAllowedTools(b.allowed_tools ?? []) } : {}),
    });
    req.log.info({ event: `${s.kind}_config_created`, account: req.accountId, config: c.id, name: c.name, endpoint: c.endpoint }, `${word} created`);
    return s.view(c);
  });

  app.get<{ Querystring: ListQuery }>(
    base,
    {
      schema: {
        tags,
        security,
        operationId: `list${s.op}s`,
        summary: `List ${word}s${s.kind === 'gateway' ? ' (the account’s, then the system configs)' : ''}.`,
        querystring: s.schemas.listQuery,
        response: { 200: s.schemas.listView, ...errorResponses(400, 401) },
      },
    },
    async (req) => {
      const q = req.query;
      const includeTotal = q.include_total_count ?? true;
      const page = await s.repo.list(req.accountId, { name: q.name, id: q.id, search: q.search, limit: q.limit ?? DEFAULT_LIST_LIMIT, startingAfter: q.starting_after, includeTotalCount: includeTotal });
      return { [s.listKey]: page.items.map(s.view), has_more: page.hasMore, ...(includeTotal ? { total_count: page.totalCount } : {}) };
    },
  );

  app.get<{ Params: { id: string } }>(`${base}/:id`, { schema: { tags, security, operationId: `get${s.op}`, summary: `Get a ${word}.`, params: idParams, response: { 200: s.schemas.view, ...errorResponses(401, 404) } } }, async (req) => {
    const c = await s.repo.get(req.accountId, req.params.id);
    if (!c) throw notFound(`${word} ${req.params.id} not found`);
    return s.view(c);
  });

  app.post<{ Params: { id: string }; Body: ConfigBody | undefined }>(
    `${base}/:id`,
    {
      schema: {
        tags,
        security,
        operationId: `update${s.op}`,
        summary: `Update a ${word}: omitted or null fields keep their values; lists replace.`,
        params: idParams,
        body: s.schemas.updateBody,
        response: { 200: s.schemas.view, ...errorResponses(400, 401, 404, 413, 415, 503) },
      },
    },
    async (req) => {
      const b = req.body ?? {};
      const cur = await s.repo.get(req.accountId, req.params.id);
      if (!cur || cur.account_id === null) throw notFound(`${word} ${req.params.id} not found${cur ? ' (system configs cannot be changed)' : ''}`);
      const mechanism = b.auth_mechanism ? checkAuthMechanism('auth_mechanism', b.auth_mechanism) : cur.auth_mechanism;
      const patch: AgentConfigPatch = {
        name: b.name == null ? undefined : name(b.name),
        endpoint: b.endpoint == null ? undefined : checkEndpoint(b.endpoint),
        auth_mechanism: b.auth_mechanism ? mechanism : undefined,
        description: b.description === null ? undefined : b.description,
      };
      if (b.custom_headers != null) patch.custom_headers = checkCustomHeaders(b.custom_headers, mechanism);
      else if (b.auth_mechanism) {
        // A new credential header must not clash with the headers kept.
        checkCustomHeaders(
          cur.custom_headers.map((h) => (h.secret_id !== undefined ? { name: h.name, secret: h.secret_id } : { name: h.name, value: h.value ?? '' })),
          mechanism,
        );
      }
      if (s.kind === 'mcp' && b.allowed_tools != null) patch.allowed_tools = checkAllowedTools(b.allowed_tools);
      const c = await s.repo.update(req.accountId, req.params.id, patch);
      req.log.info({ event: `${s.kind}_config_updated`, account: req.accountId, config: c.id, name: c.name, endpoint: c.endpoint }, `${word} updated`);
      return s.view(c);
    },
  );

  app.post<{ Params: { id: string } }>(
    `${base}/:id/delete`,
    {
      schema: {
        tags,
        security,
        operationId: `delete${s.op}`,
        summary: `Delete a ${word} and the tokens bound to it; returns the deleted view.`,
        params: idParams,
        body: emptyBody,
        response: { 200: s.schemas.view, ...errorResponses(400, 401, 404, 415, 503) },
      },
    },
    async (req) => {
      const c = await s.repo.delete(req.accountId, req.params.id);
      req.log.info({ event: `${s.kind}_config_deleted`, account: req.accountId, config: c.id }, `${word} deleted`);
      return s.view(c);
    },
  );
}
