/**
 * What the admin API asks of the data plane (the process whose doors enforce): the
 * decision for /v1/egress/check (made by the doors' own engine, so it is exactly theirs,
 * DNS-learned addresses included), the doors' metrics for /metrics, and, after a write,
 * that the doors have taken it in before the API answers. In one process it is the
 * engine itself (localPlane); with the API apart it is a message channel (process.ts).
 */
import { explainDenial } from '../policy/explain.js';
import type { Decision } from '../policy/decision.js';
import type { PolicyEngine, Protocol } from '../policy/engine.js';

export interface CheckQuestion {
  devboxId: string | null;
  policyId: string | null;
  /** The devbox is registered and running (a stopped one has nothing admitted). */
  running: boolean;
  host: string;
  port: number;
  protocol: Protocol;
}

export type CheckAnswer = Pick<Decision, 'allow' | 'wouldDeny' | 'reason' | 'matched' | 'host' | 'policyVersion'> & {
  /** On a denial or would-denial: what the doors' refusal says beside the reason (explain.ts). */
  detail?: string | null;
  remedy?: string | null;
};

/** A fleet sidecar's snapshot, for /healthz and /readyz (src/fleet/). */
export interface FleetHealth {
  snapshot: { host_id: string; revision: number; seq: number; age_seconds: number | null; connected: boolean; live: boolean } | null;
  /** Why the sidecar is not ready (no snapshot yet), or null. */
  unready: string | null;
}

export interface DataPlane {
  check(q: CheckQuestion): CheckAnswer | Promise<CheckAnswer>;
  /** Other processes' metrics (prom-client JSON), merged into this one's for /metrics. */
  metrics?: () => Promise<unknown[][]>;
  /** Every door is listening and none is draining (for /readyz). */
  listening?: () => boolean | Promise<boolean>;
  /** A write landed in the store: resolves once the doors apply it. */
  changed?: () => Promise<void>;
  /** Fleet mode: the sidecar's snapshot (absent elsewhere). */
  fleet?: () => Promise<FleetHealth | null>;
}

/** Asks the engine the way a door would. */
export function decideCheck(engine: PolicyEngine, q: CheckQuestion): CheckAnswer {
  const d = q.devboxId !== null && !q.running ? engine.decide({ devboxId: q.devboxId, via: 'credentials', source: '' }, q.host, q.port, q.protocol) : engine.decideForPolicy(q.policyId, q.host, q.port, q.protocol, q.devboxId);
  const a: CheckAnswer = { allow: d.allow, reason: d.reason, matched: d.matched, host: d.host, policyVersion: d.policyVersion };
  if (!d.allow || d.wouldDeny) {
    const x = explainDenial(d);
    a.detail = x.detail;
    a.remedy = x.remedy;
  }
  return d.wouldDeny ? { ...a, wouldDeny: true } : a;
}

export function localPlane(engine: PolicyEngine, workerMetrics?: () => Promise<unknown[][]>, readiness?: { listening: boolean }): DataPlane {
  return { check: (q) => decideCheck(engine, q), metrics: workerMetrics, listening: readiness ? () => readiness.listening : undefined };
}
