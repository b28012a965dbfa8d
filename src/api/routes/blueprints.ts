/**
 * /v1/blueprints (seed subset): create, get, list, delete, and the build's status. A build
 * is enforced with `network_policy_id` from the addresses it registered while queued,
 * provisioning or building; devboxes created with `blueprint_id` inherit
 * `launch_parameters.network_policy_id` unless they name their own policy.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { ControlStore } from '../../store/backend.js';
import type { BlueprintParameters, BlueprintStatus, FailureReason } from '../../store/blueprints.js';
import { ApiError, notFound } from '../errors.js';
import { DEFAULT_LIST_LIMIT, blueprintCreateBody, blueprintListQuery, blueprintListView, blueprintStatusBody, blueprintView as blueprintViewSchema, emptyBody, errorResponses, idParams } from '../schemas.js';
import { checkAddresses, checkName } from '../validate.js';
import { blueprintView } from '../views.js';

/**
 * The most a blueprint's stored parameters (name, dockerfile, system_setup_commands, metadata, as
 * JSON) may take: the schema bounds each field, this bounds them together, as the entries quota
 * bounds a policy (with --max-blueprints-per-account, what one account stores in blueprints).
 */
export const MAX_BLUEPRINT_BYTES = 128 * 1024;

/** The create body: the parameters echoed in the view, and the build's addresses. */
type CreateBody = BlueprintParameters & { network?: { addresses?: string[] } | null };

interface ListQuery {
  name?: string;
  status?: BlueprintStatus;
  limit?: number;
  starting_after?: string;
  include_total_count?: boolean;
}

export const blueprintRoutes =
  (store: ControlStore): FastifyPluginAsync =>
  async (app) => {
    const tags = ['blueprints'];
    const security = [{ bearerAuth: [] }];

    app.post<{ Body: CreateBody }>(
      '/v1/blueprints',
      {
        schema: {
          tags,
          security,
          operationId: 'createBlueprint',
          summary: `Start a blueprint build (status queued). The build's traffic, from network.addresses, is judged by network_policy_id until the build completes or fails. Its name, dockerfile, system_setup_commands and metadata take at most ${MAX_BLUEPRINT_BYTES} bytes together (413); the account's blueprints and its builds' addresses count toward its quotas (403 quota_exceeded).`,
          body: blueprintCreateBody,
          response: { 200: blueprintViewSchema, ...errorResponses(400, 401, 403, 409, 413, 415, 503) },
        },
      },
      async (req) => {
        const b = req.body;
        const name = checkName('name', b.name);
        const addresses = checkAddresses(b.network?.addresses ?? []);
        const launch = b.launch_parameters?.network_policy_id ?? null;
        const parameters = {
          name,
          ...(b.dockerfile != null ? { dockerfile: b.dockerfile } : {}),
          ...(b.system_setup_commands != null ? { system_setup_commands: b.system_setup_commands } : {}),
          ...(b.metadata != null ? { metadata: b.metadata } : {}),
          network_policy_id: b.network_policy_id ?? null,
          launch_parameters: { network_policy_id: launch },
        };
        const bytes = Buffer.byteLength(JSON.stringify(parameters));
        if (bytes > MAX_BLUEPRINT_BYTES) {
          throw new ApiError(413, 'payload_too_large', `blueprint too large: its dockerfile, system_setup_commands, metadata and name take ${bytes} bytes; the limit is ${MAX_BLUEPRINT_BYTES} bytes`);
        }
        const bp = await store.blueprints.create(req.accountId, {
          name,
          networkPolicyId: b.network_policy_id ?? null,
          launchNetworkPolicyId: launch,
          addresses,
          metadata: b.metadata ?? {},
          parameters,
        });
        req.log.info({ event: 'blueprint_created', account: req.accountId, blueprint: bp.id, build_policy: bp.network_policy_id, launch_policy: launch, addresses }, 'blueprint build queued');
        return blueprintView(bp);
      },
    );

    app.get<{ Querystring: ListQuery }>(
      '/v1/blueprints',
      {
        schema: {
          tags,
          security,
          operationId: 'listBlueprints',
          summary: 'List blueprints (name filter and cursor paging as for network policies).',
          querystring: blueprintListQuery,
          response: { 200: blueprintListView, ...errorResponses(400, 401) },
        },
      },
      async (req) => {
        const q = req.query;
        const includeTotal = q.include_total_count ?? true;
        const page = await store.blueprints.list(req.accountId, {
          name: q.name,
          status: q.status,
          limit: q.limit ?? DEFAULT_LIST_LIMIT,
          startingAfter: q.starting_after,
          includeTotalCount: includeTotal,
        });
        return { blueprints: page.items.map((b) => blueprintView(b)), has_more: page.hasMore, ...(includeTotal ? { total_count: page.totalCount } : {}) };
      },
    );

    app.get<{ Params: { id: string } }>(
      '/v1/blueprints/:id',
      {
        schema: {
          tags,
          security,
          operationId: 'getBlueprint',
          summary: 'Get a blueprint and its build status.',
          params: idParams,
          response: { 200: blueprintViewSchema, ...errorResponses(401, 404) },
        },
      },
      async (req) => {
        const b = await store.blueprints.get(req.accountId, req.params.id);
        if (!b) throw notFound(`blueprint ${req.params.id} not found`);
        return blueprintView(b);
      },
    );

    app.post<{ Params: { id: string }; Body: { status: BlueprintStatus; failure_reason?: FailureReason | null } }>(
      '/v1/blueprints/:id/status',
      {
        schema: {
          tags,
          security,
          operationId: 'setBlueprintStatus',
          summary: 'Extension for the build orchestrator: queued → provisioning → building → build_complete, or failed. Leaving the build steps frees its addresses.',
          params: idParams,
          body: blueprintStatusBody,
          response: { 200: blueprintViewSchema, ...errorResponses(400, 401, 404) },
        },
      },
      async (req) => {
        const b = await store.blueprints.setStatus(req.accountId, req.params.id, req.body.status, req.body.failure_reason ?? null);
        req.log.info({ event: 'blueprint_status', account: req.accountId, blueprint: b.id, status: b.status }, 'blueprint build status changed');
        return blueprintView(b);
      },
    );

    app.post<{ Params: { id: string } }>(
      '/v1/blueprints/:id/delete',
      {
        schema: {
          tags,
          security,
          operationId: 'deleteBlueprint',
          summary: 'Delete a blueprint (an unfinished build stops being admitted); returns the deleted view.',
          params: idParams,
          body: emptyBody,
          response: { 200: blueprintViewSchema, ...errorResponses(401, 404) },
        },
      },
      async (req) => {
        const b = await store.blueprints.delete(req.accountId, req.params.id);
        req.log.info({ event: 'blueprint_deleted', account: req.accountId, blueprint: b.id }, 'blueprint deleted');
        return blueprintView(b, 'deleted');
      },
    );
  };
