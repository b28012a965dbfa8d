/** /v1/network-policies: create, list, get, update, delete (Runloop-compatible). */
import type { FastifyPluginAsync } from 'fastify';
import type { EgressRules, Enforcement, NetworkPolicy } from '../../policy/model.js';
import type { Guardrails } from '../../policy/guardrails.js';
import type { ControlStore } from '../../store/backend.js';
import { notFound } from '../errors.js';
import { emptyBody, errorResponses, idParams, policyCreateBody, policyListQuery, policyListView, policyUpdateBody, policyView as policyViewSchema, DEFAULT_LIST_LIMIT } from '../schemas.js';
import { checkEgress, checkName } from '../validate.js';
import { policyView } from '../views.js';

/** The body of a create or update: the policy's own fields plus every row of EGRESS_FIELDS. */
type PolicyBody = {
  name?: string | null;
  description?: string | null;
  enforcement?: Enforcement | null;
} & { [K in keyof EgressRules]?: EgressRules[K] | null };

interface ListQuery {
  name?: string;
  id?: string;
  limit?: number;
  starting_after?: string;
  include_total_count?: boolean;
}

/** `pageBytes`: the byte budget of one list page (--api-page-bytes). */
export const networkPolicyRoutes =
  (store: ControlStore, guardrails: Guardrails, pageBytes?: number): FastifyPluginAsync =>
  async (app) => {
    const tags = ['network-policies'];
    const security = [{ bearerAuth: [] }];
    const view = (p: NetworkPolicy) => policyView(p, guardrails);
    /** The view of a policy just written, with a log line when some of its entries can never pass. */
    const written = (log: { warn: (o: object, m: string) => void }, p: NetworkPolicy) => {
      const v = view(p);
      if (v.warnings) log.warn({ event: 'policy_warnings', account: p.account_id, policy: p.id, warnings: v.warnings }, `network policy ${p.id}: ${v.warnings.join('; ')}`);
      return v;
    };

    app.post<{ Body: PolicyBody }>(
      '/v1/network-policies',
      {
        schema: {
          tags,
          security,
          operationId: 'createNetworkPolicy',
          summary: 'Create a NetworkPolicy.',
          body: policyCreateBody,
          response: { 200: policyViewSchema, ...errorResponses(400, 401, 403, 413, 415, 503) },
        },
      },
      async (req) => {
        const b = req.body;
        const name = checkName('name', b.name!);
        const p = await store.policies.create(req.accountId, { name, description: b.description ?? null, egress: checkEgress(b), enforcement: b.enforcement ?? 'enforce' });
        req.log.info({ event: 'policy_created', account: req.accountId, policy: p.id, name: p.name }, 'network policy created');
        return written(req.log, p);
      },
    );

    app.get<{ Querystring: ListQuery }>(
      '/v1/network-policies',
      {
        schema: {
          tags,
          security,
          operationId: 'listNetworkPolicies',
          summary: 'List NetworkPolicies.',
          querystring: policyListQuery,
          response: { 200: policyListView, ...errorResponses(400, 401) },
        },
      },
      async (req) => {
        const q = req.query;
        const includeTotal = q.include_total_count ?? true;
        const page = await store.policies.list(req.accountId, {
          name: q.name,
          id: q.id,
          limit: q.limit ?? DEFAULT_LIST_LIMIT,
          startingAfter: q.starting_after,
          includeTotalCount: includeTotal,
          maxBytes: pageBytes,
        });
        return {
          network_policies: page.items.map(view),
          has_more: page.hasMore,
          ...(includeTotal ? { total_count: page.totalCount } : {}),
        };
      },
    );

    app.get<{ Params: { id: string } }>(
      '/v1/network-policies/:id',
      {
        schema: {
          tags,
          security,
          operationId: 'getNetworkPolicy',
          summary: 'Get a NetworkPolicy.',
          params: idParams,
          response: { 200: policyViewSchema, ...errorResponses(401, 404) },
        },
      },
      async (req) => {
        const p = await store.policies.get(req.accountId, req.params.id);
        if (!p) throw notFound(`network policy ${req.params.id} not found`);
        return view(p);
      },
    );

    app.post<{ Params: { id: string }; Body: PolicyBody | undefined }>(
      '/v1/network-policies/:id',
      {
        schema: {
          tags,
          security,
          operationId: 'updateNetworkPolicy',
          summary: 'Update a NetworkPolicy: omitted or null fields keep their values, provided fields replace entirely.',
          params: idParams,
          body: policyUpdateBody,
          response: { 200: policyViewSchema, ...errorResponses(400, 401, 403, 404, 413, 415, 503) },
        },
      },
      async (req) => {
        const b = req.body ?? {};
        if (!(await store.policies.get(req.accountId, req.params.id))) throw notFound(`network policy ${req.params.id} not found`);
        const p = await store.policies.update(req.accountId, req.params.id, {
          name: b.name == null ? undefined : checkName('name', b.name),
          description: b.description === null ? undefined : b.description,
          egress: checkEgress(b),
          enforcement: b.enforcement ?? undefined,
        });
        req.log.info({ event: 'policy_updated', account: req.accountId, policy: p.id, version: p.version, enforcement: p.enforcement }, 'network policy updated');
        return written(req.log, p);
      },
    );

    app.post<{ Params: { id: string } }>(
      '/v1/network-policies/:id/delete',
      {
        schema: {
          tags,
          security,
          operationId: 'deleteNetworkPolicy',
          summary: 'Delete a NetworkPolicy; returns the deleted view.',
          params: idParams,
          body: emptyBody,
          response: { 200: policyViewSchema, ...errorResponses(400, 401, 404, 415, 503) },
        },
      },
      async (req) => {
        const p = await store.policies.delete(req.accountId, req.params.id);
        req.log.info({ event: 'policy_deleted', account: req.accountId, policy: p.id }, 'network policy deleted');
        return view(p);
      },
    );
  };
