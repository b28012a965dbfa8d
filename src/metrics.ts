/** The gateway's one Prometheus registry and the metrics every part shares. */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Decision, Door, Reason } from './policy/decision.js';

export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'egress_' });

/**
 * Every decision a door enforces, by door, allow/deny and reason. Doors count through
 * countDecision(): a plain add into a cell per (door, reason), handed to prom-client when
 * /metrics is scraped, so the per-request and per-query cost is one Map lookup and no
 * label hashing. Allow and deny reasons are disjoint, so the reason names the decision.
 */
const pendingDecisions = new Map<Door, Map<Reason, { allow: boolean; n: number }>>();

export const decisions = new Counter({
  name: 'egress_decisions_total',
  help: 'Decisions enforced, by door, decision and reason',
  labelNames: ['door', 'decision', 'reason'] as const,
  registers: [registry],
  collect() {
    for (const [door, cells] of pendingDecisions) {
      for (const [reason, cell] of cells) {
        if (cell.n === 0) continue;
        this.inc({ door, decision: cell.allow ? 'allow' : 'deny', reason }, cell.n);
        cell.n = 0;
      }
    }
  },
});

export function countDecision(door: Door, decision: Pick<Decision, 'allow' | 'reason'>, n = 1): void {
  let cells = pendingDecisions.get(door);
  if (cells === undefined) pendingDecisions.set(door, (cells = new Map()));
  const cell = cells.get(decision.reason);
  if (cell !== undefined) cell.n += n;
  else cells.set(decision.reason, { allow: decision.allow, n });
}

export const decisionSeconds = new Histogram({
  name: 'egress_decision_duration_seconds',
  help: 'Time from a request reaching a door to its decision (incl. resolution)',
  labelNames: ['door'] as const,
  buckets: [0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1],
  registers: [registry],
});

export const activeConnections = new Gauge({
  name: 'egress_active_connections',
  help: 'Open client connections, by door',
  labelNames: ['door'] as const,
  registers: [registry],
});

export const bytesTotal = new Counter({
  name: 'egress_bytes_total',
  help: 'Bytes relayed, by door and direction (out: devbox to destination)',
  labelNames: ['door', 'direction'] as const,
  registers: [registry],
});

export const upstreamConnectErrors = new Counter({
  name: 'egress_upstream_connect_errors_total',
  help: 'Failed connections to destinations, by door and error code',
  labelNames: ['door', 'code'] as const,
  registers: [registry],
});

/** Inputs a door refused as malformed or abusive (bad HTTP, SOCKS, ClientHello, DNS…). */
export const protocolErrors = new Counter({
  name: 'egress_protocol_errors_total',
  help: 'Malformed or abusive client input, by door and kind',
  labelNames: ['door', 'kind'] as const,
  registers: [registry],
});

export const connectionsCut = new Counter({
  name: 'egress_connections_cut_total',
  help: 'Open connections closed because a policy or devbox change now denies them',
  labelNames: ['door', 'reason'] as const,
  registers: [registry],
});

/**
 * How late the event loop ran timers since the previous scrape (perf_hooks
 * monitorEventLoopDelay, sampled every 10 ms): every door of the process shares that loop,
 * so this is the stall any one client's input costs everybody else. Reset at each scrape
 * (with two scrapers, each sees the window since either's last scrape); with DNS workers,
 * /metrics shows the worst process.
 */
const LOOP_SAMPLE_MS = 10;
const loopDelay = monitorEventLoopDelay({ resolution: LOOP_SAMPLE_MS });
loopDelay.enable();
/** Node records the interval between samples; the delay is what exceeds the sampling period. */
const lateSeconds = (ns: number) => Math.max(0, ns / 1e6 - LOOP_SAMPLE_MS) / 1000;
export const eventLoopDelay = new Gauge({
  name: 'egress_event_loop_delay_seconds',
  help: 'Event-loop delay since the previous scrape, by quantile (0.5, 0.99, 1 = max)',
  labelNames: ['quantile'] as const,
  aggregator: 'max',
  registers: [registry],
  collect() {
    const empty = loopDelay.count === 0;
    this.set({ quantile: '0.5' }, empty ? 0 : lateSeconds(loopDelay.percentile(50)));
    this.set({ quantile: '0.99' }, empty ? 0 : lateSeconds(loopDelay.percentile(99)));
    this.set({ quantile: '1' }, empty ? 0 : lateSeconds(loopDelay.max));
    loopDelay.reset();
  },
});
