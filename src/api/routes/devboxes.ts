/**
 * /v1/devboxes: register the devboxes whose traffic the gateway judges, with their source
 * addresses and policy; proxy credentials are handed out once, at creation.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { DevboxStatus } from '../../policy/model.js';
import type { ControlStore } from '../../store/backend.js';
import { notFound } from '../errors.js';
import { DEFAULT_LIST_LIMIT, devboxCreateBody, devboxListQuery, devboxListView, devboxUpdateBody, devboxView as devboxViewSchema, emptyBody, errorResponses, idParams } from '../schemas.js';
import { checkAddresses } from '../validate.js';
import { devboxView } from '../views.js';

interface CreateBody {
  name?: string | null;
  metadata?: Record<string, string> | null;
  launch_parameters?: { network_policy_id?: string | null } | null;
  network?: { addresses?: string[]; host_id?: string | null } | null;
  blueprint_id?: string | null;
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
  (store: ControlStore, pageBytes?: number): FastifyPluginAsync =>
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
          summary: 'Register a devbox: its source addresses and network policy. The response carries proxy_credentials, shown only once.',
          body: devboxCreateBody,
          response: { 200: devboxViewSchema, ...errorResponses(400, 401, 403, 409, 413, 415, 503) },
        },
      },
      async (req) => {
        const b = req.body;
        const addresses = checkAddresses(b.network?.addresses ?? []);
        const { devbox, password } = await store.devboxes.create(req.accountId, {
          name: b.name ?? null,
          metadata: b.metadata ?? {},
          networkPolicyId: b.launch_parameters?.network_policy_id ?? null,
          addresses,
          blueprintId: b.blueprint_id ?? null,
          hostId: b.network?.host_id ?? null,
        });
        req.log.info({ event: 'devbox_created', account: req.accountId, devbox: devbox.id, policy: devbox.network_policy_id, blueprint: devbox.blueprint_id, host: devbox.host_id ?? null, addresses }, 'devbox registered');
        return { ...devboxView(devbox), proxy_credentials: { username: devbox.id, password } };
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
          response: { 200: devboxListView, ...errorResponses(400, 401) },
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
          response: { 200: devboxViewSchema, ...errorResponses(401, 404) },
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
          response: { 200: devboxViewSchema, ...errorResponses(400, 401, 404, 413, 415, 503) },
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
          response: { 200: devboxViewSchema, ...errorResponses(401, 404, 415, 503) },
        },
      },
      async (req) => {
        const d = await store.devboxes.shutdown(req.accountId, req.params.id);
        req.log.info({ event: 'devbox_shutdown', account: req.accountId, devbox: d.id }, 'devbox shut down');
        return devboxView(d);
      },
    );
  };
