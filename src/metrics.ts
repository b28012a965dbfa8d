/** The gateway's one Prometheus registry and the metrics every part shares. */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { isMainThread } from 'node:worker_threads';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { type Decision, type DecisionLabel, type Door, type Reason, decisionLabel } from './policy/decision.js';
import { logLinesDropped } from './log.js';

export const registry = new Registry();
// Process-wide figures (RSS, CPU, descriptors) once per process: the API thread's would be the
// same process counted twice when /metrics sums the parts.
if (isMainThread) collectDefaultMetrics({ register: registry, prefix: 'egress_' });

/**
 * Every decision a door enforces, by door, decision (allow, deny, or would_deny: let through
 * by a report-only policy) and reason. Doors count through countDecision(): a plain add into
 * a cell per (door, decision, reason), handed to prom-client when /metrics is scraped, so the
 * per-request and per-query cost is one or two Map lookups and no label hashing. Allow and
 * deny reasons are disjoint, so the reason names the decision; would_deny cells are kept apart.
 */
type Cells = Map<Reason, { label: DecisionLabel; n: number }>;
const pendingDecisions = new Map<Door, Cells>();
const pendingWouldDeny = new Map<Door, Cells>();

export const decisions = new Counter({
  name: 'egress_decisions_total',
  help: 'Decisions enforced, by door, decision (allow, deny, would_deny) and reason',
  labelNames: ['door', 'decision', 'reason'] as const,
  registers: [registry],
  collect() {
    for (const pending of [pendingDecisions, pendingWouldDeny]) {
      for (const [door, cells] of pending) {
        for (const [reason, cell] of cells) {
          if (cell.n === 0) continue;
          this.inc({ door, decision: cell.label, reason }, cell.n);
          cell.n = 0;
        }
      }
    }
  },
});

export function countDecision(door: Door, decision: Pick<Decision, 'allow' | 'reason' | 'wouldDeny'>, n = 1): void {
  const pending = decision.wouldDeny === true ? pendingWouldDeny : pendingDecisions;
  let cells = pending.get(door);
  if (cells === undefined) pending.set(door, (cells = new Map()));
  const cell = cells.get(decision.reason);
  if (cell !== undefined) cell.n += n;
  else cells.set(decision.reason, { label: decisionLabel(decision), n });
}

export const decisionSeconds = new Histogram({
  name: 'egress_decision_duration_seconds',
  help: 'Time from a request reaching a door to its decision (incl. resolution)',
  labelNames: ['door'] as const,
  buckets: [0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1],
  registers: [registry],
});

/**
 * Open connections per door that the TCP doors count through countOpen(): a plain add per
 * connection, handed to the gauge when /metrics is scraped (a labels() child validates and
 * hashes its labels on every inc and dec).
 */
const openByDoor = new Map<Door, { n: number }>();

export function countOpen(door: Door, delta: number): void {
  const cell = openByDoor.get(door);
  if (cell !== undefined) cell.n += delta;
  else openByDoor.set(door, { n: delta });
}

export const activeConnections = new Gauge({
  name: 'egress_active_connections',
  help: 'Open client connections, by door',
  labelNames: ['door'] as const,
  registers: [registry],
  collect() {
    for (const [door, cell] of openByDoor) this.set({ door }, cell.n);
  },
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

/** ClientHellos carrying an ECH or ESNI extension (GREASE or real: indistinguishable), relayed or refused. */
export const tlsEchTotal = new Counter({
  name: 'egress_tls_ech_total',
  help: 'ClientHellos with an encrypted_client_hello (or pre-standard ECH/ESNI) extension, by door',
  labelNames: ['door'] as const,
  registers: [registry],
});

export const connectionsCut = new Counter({
  name: 'egress_connections_cut_total',
  help: 'Open connections closed because a policy or devbox change now denies them',
  labelNames: ['door', 'reason'] as const,
  registers: [registry],
});

let droppedSeen = 0;
export const logLinesDroppedTotal = new Counter({
  name: 'egress_log_lines_dropped_total',
  help: 'Log lines dropped because stdout was slow, unread, full or closed (the gateway never waits for its log)',
  registers: [registry],
  collect() {
    const now = logLinesDropped();
    if (now > droppedSeen) this.inc(now - droppedSeen);
    droppedSeen = now;
  },
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
