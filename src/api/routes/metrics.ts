/**
 * GET /metrics (no auth): the gateway's one prom-client registry, including the API's
 * own request counter and latency histogram, by route, method and status.
 */
import type { FastifyPluginAsync } from 'fastify';
import { AggregatorRegistry, Counter, Histogram } from 'prom-client';
import { registry } from '../../metrics.js';

export const apiRequests = new Counter({
  name: 'egress_api_requests_total',
  help: 'Admin API requests, by route, method and status',
  labelNames: ['route', 'method', 'status'] as const,
  registers: [registry],
});

export const storeUnavailable = new Counter({
  name: 'egress_api_storage_unavailable_total',
  help: 'Admin API requests answered 503 storage_unavailable, by the storage error (SQLITE_FULL, SQLITE_READONLY, …)',
  labelNames: ['error'] as const,
  registers: [registry],
});

export const apiRequestSeconds = new Histogram({
  name: 'egress_api_request_duration_seconds',
  help: 'Admin API request latency, by route, method and status',
  labelNames: ['route', 'method', 'status'] as const,
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  registers: [registry],
});

/** `workerMetrics`: the other processes' metrics, summed into this one's. */
export function metricsRoutes(workerMetrics?: () => Promise<unknown[][]>): FastifyPluginAsync {
  return async (app) => {
    app.get(
      '/metrics',
      {
        schema: { tags: ['operations'], summary: 'Prometheus metrics (no auth).', produces: ['text/plain'] },
      },
      async (_req, reply) => {
        if (workerMetrics === undefined) return reply.type(registry.contentType).send(await registry.metrics());
        const others = await workerMetrics();
        const merged = AggregatorRegistry.aggregate([await registry.getMetricsAsJSON(), ...others] as Parameters<typeof AggregatorRegistry.aggregate>[0]);
        return reply.type(registry.contentType).send(await merged.metrics());
      },
    );
  };
}
