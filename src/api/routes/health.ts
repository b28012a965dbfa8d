/**
 * GET /healthz: liveness (the process answers). GET /readyz: readiness — every listener
 * is up and not draining, and the store takes a write now. No auth on either.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { ControlStore } from '../../store/backend.js';
import { ApiError } from '../errors.js';
import { errorSchema } from '../schemas.js';
import type { FleetHealth } from '../plane.js';

/** A fleet sidecar's snapshot (src/fleet/fleet-follower.ts), shown by /healthz and /readyz in follow mode. */
const snapshotSchema = {
  type: 'object',
  description: 'Fleet sidecar only: the local policy snapshot it enforces.',
  properties: {
    host_id: { type: 'string' },
    revision: { type: 'integer', description: 'KV revision of the last bucket entry applied' },
    seq: { type: 'integer', description: 'highest control-plane change seq applied' },
    epoch: { type: 'integer', description: 'the fleet epoch of the snapshot (a new one after a bucket loss or a database restore)' },
    age_seconds: { type: 'number', description: 'seconds since the newest control-plane heartbeat applied (before the first: since the sidecar started)' },
    max_staleness_seconds: { type: 'integer', description: 'past this age the sidecar is not ready (--max-staleness)' },
    stale: { type: 'boolean', description: 'age_seconds is past max_staleness_seconds' },
    connected: { type: 'boolean' },
    live: { type: 'boolean', description: 'resynced and following the bucket now' },
  },
};

const ok = (value: string) => ({ type: 'object', properties: { status: { type: 'string', enum: [value] }, snapshot: snapshotSchema }, required: ['status'] });

export const healthRoutes =
  (store: ControlStore, listening?: () => boolean | Promise<boolean>, fleet?: () => Promise<FleetHealth | null>): FastifyPluginAsync =>
  async (app) => {
    const snapshot = async () => {
      const f = fleet ? await fleet() : null;
      return { f, extra: f?.snapshot ? { snapshot: f.snapshot } : {} };
    };
    app.get(
      '/healthz',
      {
        schema: { tags: ['operations'], summary: 'Liveness check (no auth); a fleet sidecar adds its snapshot revision and age.', response: { 200: ok('ok') } },
      },
      async () => ({ status: 'ok' as const, ...(await snapshot()).extra }),
    );

    app.get(
      '/readyz',
      {
        schema: {
          tags: ['operations'],
          summary: 'Readiness (no auth): 200 when every listener is up and the store is writable, else 503 naming why.',
          response: { 200: ok('ready'), 503: errorSchema },
        },
      },
      async () => {
        if (listening && !(await listening())) throw new ApiError(503, 'service_unavailable', 'listeners are starting or draining');
        const why = await store.probeWritable();
        if (why !== null) throw new ApiError(503, 'storage_unavailable', `the policy store is unavailable: ${why}`);
        const { f, extra } = await snapshot();
        if (fleet && f === null) throw new ApiError(503, 'service_unavailable', 'the data plane did not answer for its policy snapshot');
        if (f?.unready) throw new ApiError(503, 'service_unavailable', f.unready);
        return { status: 'ready' as const, ...extra };
      },
    );
  };
