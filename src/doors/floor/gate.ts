/**
 * What every TCP door does between "a client wants host:port" and "dial this address":
 * decide(), resolve the name through the gateway's resolver, apply the guardrail to the
 * address actually dialled, count and log. Doors only translate the outcome into their
 * protocol's words.
 */
import type { Logger } from 'pino';
import { type Decision, type Door, decisionLabel, denial } from '../../policy/decision.js';
import { explainDenial } from '../../policy/explain.js';
import type { Identity, PolicyEngine } from '../../policy/engine.js';
import { type Resolver, ResolveError } from '../../resolver/resolver.js';
import { countDecision, decisionSeconds } from '../../metrics.js';
import type { LogAllowed } from '../../config.js';
import { DeferredLines } from '../../log.js';

/** --log-allowed as "one in this many" (0: none). */
export function allowLogEvery(l: LogAllowed): number {
  return l.mode === 'all' ? 1 : l.mode === 'none' ? 0 : l.every;
}

/** Takes every denial and would-denial a door records (never blocks; see DenialRecorder). */
export interface DenialSink {
  record(identity: Identity, door: Door, decision: Decision, port: number): void;
}

export type Admission = { ok: true; decision: Decision; address: string } | { ok: false; decision: Decision; error: 'denied' } | { ok: false; decision: Decision; error: 'resolve_failed'; detail: string };

/** prom-client children, made once per door (labels() allocates on every call). */
const seconds = new Map<Door, { observe(v: number): void }>();

export class Gate {
  /** A fleet sidecar past --max-staleness with --stale fail-closed: every new connection is refused. */
  refusing: (() => boolean) | null = null;
  constructor(
    readonly engine: PolicyEngine,
    readonly resolver: Resolver,
    readonly log: Logger,
  ) {
    this.lines = new DeferredLines(log);
  }

  /** Decide, resolve and guard. A denial is counted and logged here; an allow is counted. */
  async admit(identity: Identity, host: string, port: number, door: Door): Promise<Admission> {
    return this.admitNow(identity, host, port, door);
  }

  /**
   * admit() without the promise when it is not needed: a denial, an IP destination or a
   * name whose addresses are in the resolver's cache are answered synchronously; else the
   * promise of the full (resolving) path. Same counting and logging either way.
   */
  admitNow(identity: Identity, host: string, port: number, door: Door): Admission | Promise<Admission> {
    const started = performance.now();
    const decision = this.refusing?.() ? denial('policy_stale', host) : this.engine.decide(identity, host, port);
    return this.admitDecided(identity, port, door, started, decision);
  }

  private admitDecided(identity: Identity, port: number, door: Door, started: number, decision: Decision): Admission | Promise<Admission> {
    if (!decision.allow) return this.done(identity, door, port, started, { ok: false, decision, error: 'denied' });
    if (decision.hostKind === 'ip') return this.done(identity, door, port, started, { ok: true, decision, address: decision.host });
    const account = this.accountOf(identity);
    const cached = this.resolver.resolveCached?.(decision.host, account);
    if (cached !== undefined) return this.done(identity, door, port, started, this.check(decision, cached));
    return this.resolveAllowed(decision, account).then((r) => this.done(identity, door, port, started, r));
  }

  private done(identity: Identity, door: Door, port: number, started: number, result: Admission): Admission {
    let h = seconds.get(door);
    if (h === undefined) seconds.set(door, (h = decisionSeconds.labels(door)));
    h.observe((performance.now() - started) / 1000);
    this.record(identity, door, result.decision, port);
    return result;
  }

  /** The answer-cache partition of an identity: its devbox's account. */
  private accountOf(identity: Identity): string {
    return identity.devboxId === null ? '' : (this.engine.devbox(identity.devboxId)?.account_id ?? '');
  }

  private async resolveAllowed(decision: Decision, account: string): Promise<Admission> {
    let addresses: string[];
    try {
      addresses = await this.resolver.resolve(decision.host, account);
    } catch (e) {
      const detail = e instanceof ResolveError ? e.code : 'SERVFAIL';
      return { ok: false, decision, error: 'resolve_failed', detail };
    }
    return this.check(decision, addresses);
  }

  /** The guardrail on the addresses: the first one the policy allows is dialled. */
  private check(decision: Decision, addresses: readonly string[]): Admission {
    let last = decision;
    for (const ip of addresses) {
      const checked = this.engine.checkResolved(decision, ip);
      if (checked.allow) return { ok: true, decision: checked, address: ip };
      last = checked;
    }
    return { ok: false, decision: last, error: 'denied' };
  }

  /**
   * Counts a decision; logs denials and would-denials (a report-only policy's) and hands them
   * to the denial record. Allowed connections are logged when they end.
   */
  record(identity: Identity, door: Door, decision: Decision, port: number): void {
    countDecision(door, decision);
    if (!decision.allow || decision.wouldDeny === true) {
      // Written after the door has answered (same turn of the event loop, before any other
      // I/O): serialising the line is not on the denied client's critical path.
      this.defer({ ...decisionFields(identity, door, decision, port), ...whyFields(decision) }, decision.allow ? 'egress would be denied (report-only policy): let through' : 'egress denied');
      this.denials?.record(identity, door, decision, port);
    }
  }

  /** Where denials and would-denials are remembered per devbox (see DenialRecorder); none in tools. */
  denials: DenialSink | null = null;
  /** --log-allowed: one allowed connection in this many gets a line (1: all, 0: none). */
  allowLogEvery = 1;
  private allowedSeen = 0;

  /** Decision lines, written after the door has answered, a slice per turn (see DeferredLines). */
  private readonly lines: DeferredLines;

  private defer(line: object, msg: string): void {
    this.lines.info(line, msg);
  }

  private capLogged = 0;
  private capQuiet = 0;

  /**
   * A devbox at its connection cap was refused: at most one line a second (a flood of refusals
   * is not a flood of lines), with the limit, its setting and how many were not logged.
   */
  capRefused(identity: Identity, door: Door, host: string, port: number, limit: number): void {
    const now = performance.now();
    if (now - this.capLogged < 1000) {
      this.capQuiet++;
      return;
    }
    this.capLogged = now;
    const quiet = this.capQuiet;
    this.capQuiet = 0;
    this.lines.warn({ event: 'connection_limit', door, devbox: identity.devboxId, source: identity.source, host, port, limit, setting: '--max-connections-per-devbox', ...(quiet > 0 ? { not_logged: quiet } : {}) }, 'devbox at its connection limit: refused');
  }

  /** Writes every pending decision line now (at shutdown). */
  readonly flushLog = (): void => this.lines.flush();

  /** One line for an allowed connection or request when it ends (written like denials, after this turn's I/O). */
  logConnection(identity: Identity, door: Door, decision: Decision, port: number, bytesOut: number, bytesIn: number, durationMs: number, error?: string): void {
    if (this.allowLogEvery === 0 || ++this.allowedSeen % this.allowLogEvery !== 0) return;
    this.defer(
      {
        ...decisionFields(identity, door, decision, port),
        policy_version: decision.policyVersion,
        matched: decision.matched,
        bytes_out: bytesOut,
        bytes_in: bytesIn,
        duration_ms: Math.round(durationMs * 1000) / 1000,
        ...(error ? { error } : {}),
        ...(this.allowLogEvery > 1 ? { sampled: `1/${this.allowLogEvery}` } : {}),
      },
      'egress connection closed',
    );
  }
}

/** What a denial line adds: the address and named range, or the rule, and the remedy (explain.ts). */
function whyFields(decision: Decision) {
  const x = explainDenial(decision);
  const a = decision.detail;
  return {
    ...(a?.address !== undefined ? { address: a.address, range: a.range ?? null, range_name: a.rangeName ?? null } : {}),
    ...(x.detail !== null ? { detail: x.detail } : {}),
    ...(x.remedy !== null ? { remedy: x.remedy } : {}),
  };
}

/** The fields every decision line carries (denials, would-denials and closed connections). */
function decisionFields(identity: Identity, door: Door, decision: Decision, port: number) {
  return {
    event: 'decision',
    door,
    devbox: identity.devboxId,
    source: identity.source,
    policy: decision.policyId,
    host: decision.host,
    port,
    decision: decisionLabel(decision),
    reason: decision.reason,
  };
}
