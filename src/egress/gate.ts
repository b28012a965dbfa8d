/**
 * What every TCP door does between "a client wants host:port" and "dial this address":
 * decide(), resolve the name through the gateway's resolver, apply the guardrail to the
 * address actually dialled, count and log. Doors only translate the outcome into their
 * protocol's words.
 */
import type { Logger } from 'pino';
import type { Decision, Door } from '../policy/decision.js';
import type { Identity, PolicyEngine } from '../policy/engine.js';
import { type Resolver, ResolveError } from '../dns/resolver.js';
import { decisionSeconds, decisions } from '../metrics.js';

export type Admission =
  | { ok: true; decision: Decision; address: string }
  | { ok: false; decision: Decision; error: 'denied' }
  | { ok: false; decision: Decision; error: 'resolve_failed'; detail: string };

export class Gate {
  constructor(readonly engine: PolicyEngine, readonly resolver: Resolver, readonly log: Logger) {}

  /** Decide, resolve and guard. A denial is counted and logged here; an allow is counted. */
  async admit(identity: Identity, host: string, port: number, door: Door): Promise<Admission> {
    const started = performance.now();
    let decision = this.engine.decide(identity, host, port, door);
    let result: Admission;
    if (!decision.allow) {
      result = { ok: false, decision, error: 'denied' };
    } else if (decision.hostKind === 'ip') {
      result = { ok: true, decision, address: decision.host };
    } else {
      result = await this.resolveAllowed(decision);
      decision = result.decision;
    }
    decisionSeconds.labels(door).observe((performance.now() - started) / 1000);
    this.record(identity, door, decision, port);
    return result;
  }

  private async resolveAllowed(decision: Decision): Promise<Admission> {
    let addresses: string[];
    try {
      addresses = await this.resolver.resolve(decision.host);
    } catch (e) {
      const detail = e instanceof ResolveError ? e.code : 'SERVFAIL';
      return { ok: false, decision, error: 'resolve_failed', detail };
    }
    let last = decision;
    for (const ip of addresses) {
      const checked = this.engine.checkResolved(decision, ip);
      if (checked.allow) return { ok: true, decision: checked, address: ip };
      last = checked;
    }
    return { ok: false, decision: last, error: 'denied' };
  }

  /** Counts a decision and logs denials (allowed connections are logged when they end). */
  record(identity: Identity, door: Door, decision: Decision, port: number): void {
    decisions.labels(door, decision.allow ? 'allow' : 'deny', decision.reason).inc();
    if (!decision.allow) {
      this.log.info(
        {
          event: 'decision', door, devbox: identity.devboxId, source: identity.source, policy: decision.policyId,
          host: decision.host, port, decision: 'deny', reason: decision.reason,
        },
        'egress denied',
      );
    }
  }

  /** One line for an allowed connection or request when it ends. */
  logConnection(identity: Identity, door: Door, decision: Decision, port: number, bytesOut: number, bytesIn: number, durationMs: number, error?: string): void {
    this.log.info(
      {
        event: 'decision', door, devbox: identity.devboxId, source: identity.source, policy: decision.policyId,
        policy_version: decision.policyVersion, host: decision.host, port, decision: 'allow', reason: decision.reason,
        matched: decision.matched, bytes_out: bytesOut, bytes_in: bytesIn, duration_ms: Math.round(durationMs * 1000) / 1000,
        ...(error ? { error } : {}),
      },
      'egress connection closed',
    );
  }
}
