/** POST /v1/egress/check: explain what the gateway would decide for a devbox or policy. */
import type { FastifyPluginAsync } from 'fastify';
import type { DataPlane } from '../plane.js';
import type { ControlStore } from '../../store/backend.js';
import { decisionLabel } from '../../policy/decision.js';
import { badRequest } from '../errors.js';
import { egressCheckBody, egressCheckView, errorResponses } from '../schemas.js';

interface CheckBody {
  devbox_id?: string | null;
  network_policy_id?: string | null;
  host: string;
  port?: number;
  protocol?: 'TCP' | 'UDP';
}

export const egressCheckRoutes =
  (store: ControlStore, plane: DataPlane): FastifyPluginAsync =>
  async (app) => {
    app.post<{ Body: CheckBody }>(
      '/v1/egress/check',
      {
        schema: {
          tags: ['egress'],
          security: [{ bearerAuth: [] }],
          operationId: 'checkEgress',
          summary: 'Would this devbox (or policy) be allowed to reach host:port? Same decision the doors enforce (before DNS resolution).',
          body: egressCheckBody,
          response: { 200: egressCheckView, ...errorResponses(400, 401, 415) },
        },
      },
      async (req) => {
        const b = req.body;
        const port = b.port ?? 443;
        const protocol = b.protocol ?? 'TCP';
        const hasDevbox = b.devbox_id != null;
        const hasPolicy = b.network_policy_id != null;
        if (hasDevbox === hasPolicy) throw badRequest('give exactly one of "devbox_id" or "network_policy_id"');
        let policyId: string | null;
        let devboxId: string | null = null;
        let running = false;
        if (hasDevbox) {
          const d = await store.devboxes.get(req.accountId, b.devbox_id!);
          if (!d) throw badRequest(`field "devbox_id": devbox ${b.devbox_id!} does not exist in this account`);
          devboxId = d.id;
          policyId = d.network_policy_id;
          running = d.status === 'running';
        } else {
          const p = await store.policies.get(req.accountId, b.network_policy_id!);
          if (!p) throw badRequest(`field "network_policy_id": network policy ${b.network_policy_id!} does not exist in this account`);
          policyId = p.id;
        }
        // Decided by the doors' engine (the data plane), the way a door would.
        const d = await plane.check({ devboxId, policyId, running, host: b.host, port, protocol });
        // The devbox's policy belongs to its account (a devbox only attaches its own account's).
        const enforcement = policyId === null ? null : ((await store.policies.get(req.accountId, policyId))?.enforcement ?? null);
        return {
          decision: decisionLabel(d),
          reason: d.reason,
          enforcement,
          matched: d.matched,
          host: d.host,
          port,
          protocol,
          devbox_id: devboxId,
          network_policy_id: policyId,
          policy_version: d.policyVersion,
          ...(d.detail != null ? { detail: d.detail } : {}),
          ...(d.remedy != null ? { remedy: d.remedy } : {}),
        };
      },
    );
  };
