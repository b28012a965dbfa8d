/**
 * GET /healthz: liveness (the process answers). GET /readyz: readiness — every listener
 * is up and not draining, and the store takes a write now. No auth on either.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { ControlStore } from '../../store/backend.js';
import { ApiError } from '../errors.js';
import { errorSchema } from '../schemas.js';

const ok = (value: string) => ({ type: 'object', properties: { status: { type: 'string', enum: [value] } }, required: ['status'] });

export const healthRoutes = (store: ControlStore, listening?: () => boolean | Promise<boolean>): FastifyPluginAsync => async (app) => {
  app.get('/healthz', {
    schema: { tags: ['operations'], summary: 'Liveness check (no auth).', response: { 200: ok('ok') } },
  }, async () => ({ status: 'ok' as const }));

  app.get('/readyz', {
    schema: {
      tags: ['operations'],
      summary: 'Readiness (no auth): 200 when every listener is up and the store is writable, else 503 naming why.',
      response: { 200: ok('ready'), 503: errorSchema },
    },
  }, async () => {
    if (listening && !(await listening())) throw new ApiError(503, 'service_unavailable', 'listeners are starting or draining');
    const why = await store.probeWritable();
    if (why !== null) throw new ApiError(503, 'storage_unavailable', `the policy store is unavailable: ${why}`);
    return { status: 'ready' as const };
  });
};
