/** GET /healthz: liveness, no auth. */
import type { FastifyPluginAsync } from 'fastify';

export const healthRoutes: FastifyPluginAsync = async (app) => {
  app.get('/healthz', {
    schema: {
      tags: ['operations'], summary: 'Liveness check (no auth).',
      response: { 200: { type: 'object', properties: { status: { type: 'string', enum: ['ok'] } }, required: ['status'] } },
    },
  }, async () => ({ status: 'ok' as const }));
};
