/** GET /v1/egress/events: the per-devbox record of recent denials and would-denials. */
import type { FastifyPluginAsync } from 'fastify';
import type { DenialEvent } from '../../store/index.js';
import type { ControlStore } from '../../store/backend.js';
import { DEFAULT_LIST_LIMIT, egressEventListQuery, egressEventListView, errorResponses } from '../schemas.js';

interface ListQuery {
  devbox_id?: string;
  decision?: 'deny' | 'would_deny';
  since?: number;
  limit?: number;
  starting_after?: string;
  include_total_count?: boolean;
}

function eventView(e: DenialEvent) {
  return {
    id: e.id,
    devbox_id: e.devbox_id,
    network_policy_id: e.policy_id,
    host: e.host,
    port: e.port,
    door: e.door,
    reason: e.reason,
    decision: e.decision,
    count: e.count,
    first_seen_ms: e.first_seen_ms,
    last_seen_ms: e.last_seen_ms,
  };
}

export const egressEventRoutes =
  (store: ControlStore): FastifyPluginAsync =>
  async (app) => {
    app.get<{ Querystring: ListQuery }>(
      '/v1/egress/events',
      {
        schema: {
          tags: ['egress'],
          security: [{ bearerAuth: [] }],
          operationId: 'listEgressEvents',
          summary: 'Recent denials and would-denials per devbox (host, port, door, reason, count, first/last seen), oldest first, cursor-paged like the policy list.',
          querystring: egressEventListQuery,
          response: { 200: egressEventListView, ...errorResponses(400, 401) },
        },
      },
      async (req) => {
        const q = req.query;
        const includeTotal = q.include_total_count ?? true;
        const page = await store.denialEvents.list(req.accountId, {
          devboxId: q.devbox_id,
          decision: q.decision,
          sinceMs: q.since,
          limit: q.limit ?? DEFAULT_LIST_LIMIT,
          startingAfter: q.starting_after,
          includeTotalCount: includeTotal,
        });
        return { events: page.items.map(eventView), has_more: page.hasMore, ...(includeTotal ? { total_count: page.totalCount } : {}) };
      },
    );
  };
