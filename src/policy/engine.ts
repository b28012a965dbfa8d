/**
 * The policy engine: holds compiled policies and the running devboxes, answers decide()
 * for every door, and tells listeners when something changed so open connections can be
 * re-judged. Reads only through a PolicySource.
 */
import { EventEmitter } from 'node:events';
import type { Devbox } from './model.js';
import type { PolicySource, SourceChange } from './source.js';
import { CompiledPolicy, DECISION_CACHE_MAX, NO_MATCH, type ToggleHosts } from './compiler.js';
import { type Decision, denial, reportOnly } from './decision.js';
import { SCAN_OK, hostScan, normalizeHost, scanHost } from './hostname.js';
import { type GuardedRange, Guardrails } from './guardrails.js';
import { type IpWords, ipToWords } from './ip.js';
import { DecisionCache } from './cache.js';
import { LearnedAddresses } from './learned.js';
import { passwordMatches } from './password.js';

export interface Identity {
  /** The running devbox this traffic belongs to, or null for an unknown client. */
  readonly devboxId: string | null;
  readonly via: 'credentials' | 'address' | 'none';
  /** Source address of the connection or query. */
  readonly source: string;
}

export interface EngineOptions {
  toggles: ToggleHosts;
  allowPrivate: readonly string[];
  /** Devbox tunnel hostnames are `{port}-{tunnel_key}.<tunnelDomain>`. */
  tunnelDomain: string;
  /** Decisions cached per compiled policy (default 4096; 0 disables the cache). */
  decisionCacheSize?: number;
  /** DNS-learned addresses one devbox holds at once (--dns-learn-per-devbox). */
  learnedPerDevbox?: number;
}

interface AccountIndex {
  addresses: Set<string>;
  tunnelKeys: Set<string>;
}

interface Runtime {
  devbox: Devbox;
  compiled: CompiledPolicy | null; // null: the devbox names a policy that does not exist
}

export type Protocol = 'TCP' | 'UDP';

const EMPTY_ACCOUNT: AccountIndex = { addresses: new Set(), tunnelKeys: new Set() };

export class PolicyEngine {
  guardrails: Guardrails;
  /**
   * What an IP literal is, independent of any policy (canonical form, words, guardrail
   * verdicts), by its spelling: parsing it is most of an IP decision's cost, and IP
   * decisions are not cached per policy (learned and account addresses change under them).
   */
  private readonly ipFacts = new DecisionCache<IpFacts>(4096);
  readonly learned: LearnedAddresses;
  private readonly events = new EventEmitter();
  private readonly compiled = new Map<string, CompiledPolicy>();
  private readonly runtimes = new Map<string, Runtime>();
  private readonly byAddress = new Map<string, string>();
  private readonly accounts = new Map<string, AccountIndex>();
  private defaultPolicy: CompiledPolicy;
  private readonly tunnelSuffix: string;
  private readonly unsubscribe: () => void;
  private readonly cacheSize: number;

  constructor(
    private readonly source: PolicySource,
    private opts: EngineOptions,
  ) {
    this.guardrails = new Guardrails(opts.allowPrivate);
    this.learned = new LearnedAddresses(opts.learnedPerDevbox);
    this.cacheSize = opts.decisionCacheSize ?? DECISION_CACHE_MAX;
    this.defaultPolicy = new CompiledPolicy(null, opts.toggles, this.cacheSize);
    this.tunnelSuffix = `.${opts.tunnelDomain.toLowerCase()}`;
    this.events.setMaxListeners(0);
    for (const d of source.runningDevboxes()) this.addRuntime(d);
    this.unsubscribe = source.onChange((c) => this.apply(c));
  }

  /**
   * New gateway-wide options (SIGHUP: allow-private, gateway and mirror hosts): every policy
   * is compiled again on its next use and cached verdicts are forgotten. The tunnel domain
   * and cache size stay as started.
   */
  reconfigure(opts: Pick<EngineOptions, 'toggles' | 'allowPrivate'>): void {
    this.opts = { ...this.opts, toggles: opts.toggles, allowPrivate: opts.allowPrivate };
    this.guardrails = new Guardrails(opts.allowPrivate);
    this.ipFacts.clear();
    this.defaultPolicy = new CompiledPolicy(null, this.opts.toggles, this.cacheSize);
    this.compiled.clear();
    for (const rt of this.runtimes.values()) {
      const id = rt.devbox.network_policy_id;
      rt.compiled = id === null ? this.defaultPolicy : this.compiledFor(id);
    }
  }

  close(): void {
    this.unsubscribe();
    this.events.removeAllListeners();
  }

  /** Called after every applied change (policy edited, devbox attached, shut down…). */
  onChange(listener: (change: SourceChange) => void): () => void {
    this.events.on('change', listener);
    return () => this.events.off('change', listener);
  }

  // ── identity ────────────────────────────────────────────────────────────────

  identifyByAddress(source: string): Identity {
    const ip = source.startsWith('::ffff:') ? source.slice(7) : source;
    const id = this.byAddress.get(ip) ?? null;
    return { devboxId: id, via: id ? 'address' : 'none', source: ip };
  }

  /** Null when the credentials are wrong (the door answers 407 / SOCKS auth failure). */
  identifyByCredentials(username: string, password: string, source: string): Identity | null {
    const rt = this.runtimes.get(username);
    if (!passwordMatches(rt?.devbox.password_hash ?? null, password) || !rt) return null;
    const ip = source.startsWith('::ffff:') ? source.slice(7) : source;
    return { devboxId: rt.devbox.id, via: 'credentials', source: ip };
  }

  devbox(id: string): Devbox | undefined {
    return this.runtimes.get(id)?.devbox;
  }

  /**
   * The compiled policy a running devbox is under right now (its toggles, id and version);
   * null when it names a policy that does not exist, undefined when it is not running.
   */
  policyOf(devboxId: string): CompiledPolicy | null | undefined {
    return this.runtimes.get(devboxId)?.compiled;
  }

  // ── decisions ───────────────────────────────────────────────────────────────

  /**
   * May this identity reach host:port? The one decision every door asks, and the same
   * answer whichever door asks (the door is the caller's to count and log, not an input).
   */
  decide(identity: Identity, host: string, port: number, protocol: Protocol = 'TCP'): Decision {
    const rt = identity.devboxId === null ? undefined : this.runtimes.get(identity.devboxId);
    if (rt === undefined) return denial('unknown_client', host);
    const cp = rt.compiled;
    if (cp === null) return denial('policy_missing', host, { policyId: rt.devbox.network_policy_id, policyVersion: null });
    return this.decideWith(cp, rt.devbox.id, host, port, protocol);
  }

  /**
   * The denial for a destination a door could not even read as a name (e.g. a DNS label
   * with a dot or a control byte inside), carrying the devbox's policy like any decision.
   */
  denyUnreadable(identity: Identity, host: string): Decision {
    const rt = identity.devboxId === null ? undefined : this.runtimes.get(identity.devboxId);
    if (rt === undefined) return denial('unknown_client', host);
    const cp = rt.compiled;
    if (cp === null) return denial('policy_missing', host, { policyId: rt.devbox.network_policy_id, policyVersion: null });
    return denial('invalid_host', host, this.ref(cp), 'invalid');
  }

  /** decide() against a policy alone, for explain (`/v1/egress/check`, `check`). */
  decideForPolicy(policyId: string | null, host: string, port: number, protocol: Protocol = 'TCP', devboxId: string | null = null): Decision {
    const cp = policyId === null ? this.defaultPolicy : this.compiledFor(policyId);
    if (cp === null) return denial('policy_missing', host, { policyId, policyVersion: null });
    return this.decideWith(cp, devboxId, host, port, protocol);
  }

  /**
   * The guardrail on the address actually dialled, after a name was allowed and resolved.
   * Applies under allow_all too. Returns the decision to enforce.
   */
  checkResolved(decision: Decision, ip: string): Decision {
    if (!decision.allow) return decision;
    const f = this.factsOf(ip, ip);
    if (f.blocked === null) return decision;
    return guardrailDenial(decision.host, decision, decision.hostKind, f);
  }

  /**
   * The policy's verdict as its enforcement mode enforces it: report-only policies turn their
   * own denials into would_deny allows here (the one place report mode acts). Name decisions
   * are cached as enforced, so a cached would_deny costs what a cached allow does.
   */
  private decideWith(cp: CompiledPolicy, devboxId: string | null, host: string, port: number, protocol: Protocol): Decision {
    const hit = cp.cache.get(host);
    if (hit !== undefined) return hit;
    // Fast path: a plain lower-case name is already normalised, and the pass that proved
    // it also hashed it for the matcher.
    if (scanHost(host) === SCAN_OK) return this.cacheName(cp, host, this.decideName(cp, host, true));
    const ipf = this.ipFacts.get(host);
    if (ipf !== undefined) return this.enforced(cp, this.decideIp(cp, devboxId, ipf, port, protocol));
    const n = normalizeHost(host);
    if (n.kind === 'name') return this.cacheName(cp, host, this.decideName(cp, n.name, false));
    if (n.kind === 'ip') return this.enforced(cp, this.decideIp(cp, devboxId, this.factsOf(n.ip, host), port, protocol));
    return denial('invalid_host', host, this.ref(cp), 'invalid');
  }

  private enforced(cp: CompiledPolicy, d: Decision): Decision {
    return cp.report ? reportOnly(d) : d;
  }

  private cacheName(cp: CompiledPolicy, host: string, d: Decision): Decision {
    const f = this.enforced(cp, d);
    cp.cache.set(host, f);
    return f;
  }

  private ref(cp: CompiledPolicy): { policyId: string | null; policyVersion: number | null } {
    return { policyId: cp.id, policyVersion: cp.id === null ? null : cp.version };
  }

  private allowed(cp: CompiledPolicy, host: string, hostKind: 'name' | 'ip', reason: Decision['reason'], matched: string | null): Decision {
    return { allow: true, reason, matched, policyId: cp.id, policyVersion: cp.id === null ? null : cp.version, host, hostKind };
  }

  /** `scanned`: scanHost(name) was the last scan (hostScan holds its hashes). */
  private decideName(cp: CompiledPolicy, name: string, scanned: boolean): Decision {
    if (cp.allowAll) return this.allowed(cp, name, 'name', 'allow_all', null);
    if (scanned) {
      const r = cp.findScanned(name, hostScan);
      if (r !== NO_MATCH) return this.allowed(cp, name, 'name', cp.matchReason(r), cp.matchEntry(r));
    } else {
      const m = cp.matchName(name);
      if (m !== undefined) return this.allowed(cp, name, 'name', m.reason, m.entry);
    }
    if (cp.devboxToDevbox && this.isAccountTunnel(cp.accountId, name)) {
      return this.allowed(cp, name, 'name', 'devbox_to_devbox', name);
    }
    const d = denial('not_allowlisted', name, this.ref(cp));
    // `name` asked where the policy has `*.name`: the refusal says the wildcard does not admit it.
    const near = scanned ? cp.wildcardOver(name, hostScan.hash) : cp.wildcardOver(name);
    return near === null ? d : { ...d, detail: { near } };
  }

  /** The facts of a canonical IP (`ip`), remembered under the spelling the client used. */
  private factsOf(ip: string, spelling: string): IpFacts {
    let f = this.ipFacts.get(spelling);
    if (f === undefined) {
      const words = ipToWords(ip);
      f = { ip, words, blocked: this.guardrails.blockedWords(words), hostLocal: this.guardrails.hostLocalWords(words) };
      this.ipFacts.set(spelling, f);
    }
    return f;
  }

  private decideIp(cp: CompiledPolicy, devboxId: string | null, f: IpFacts, port: number, protocol: Protocol): Decision {
    const ip = f.ip;
    const account = (cp.accountId !== null && this.accounts.get(cp.accountId)) || EMPTY_ACCOUNT;
    // The account's own devboxes are reachable under devbox_to_devbox even though their
    // addresses are usually private; but a registration must not turn the host's loopback
    // or the cloud metadata address into a "peer", so host-local addresses stay guarded.
    if (cp.devboxToDevbox && account.addresses.has(ip) && !this.isOwnAddress(devboxId, ip) && !f.hostLocal) {
      return this.allowed(cp, ip, 'ip', 'devbox_to_devbox', ip);
    }
    if (f.blocked !== null) return guardrailDenial(ip, this.ref(cp), 'ip', f);
    if (cp.allowAll) return this.allowed(cp, ip, 'ip', 'allow_all', null);
    const cidr = f.words === null ? null : cp.matchCidr(f.words, port, protocol);
    if (cidr !== null) return this.allowed(cp, ip, 'ip', 'cidr', cidr);
    const toggle = cp.matchToggleIp(ip);
    if (toggle !== undefined) return this.allowed(cp, ip, 'ip', toggle.reason, toggle.entry);
    if (devboxId !== null) {
      const learned = this.learned.lookup(devboxId, ip);
      if (learned !== undefined) {
        const again = this.decideName(cp, learned.name, false);
        if (again.allow) return this.allowed(cp, ip, 'ip', 'dns_learned', learned.name);
      }
    }
    return denial('ip_literal', ip, this.ref(cp), 'ip');
  }

  private isOwnAddress(devboxId: string | null, ip: string): boolean {
    return devboxId !== null && this.byAddress.get(ip) === devboxId;
  }

  private isAccountTunnel(accountId: string | null, name: string): boolean {
    if (accountId === null || !name.endsWith(this.tunnelSuffix)) return false;
    const label = name.slice(0, name.length - this.tunnelSuffix.length);
    const m = /^\d{1,5}-([a-z0-9]+)$/.exec(label);
    return m !== null && (this.accounts.get(accountId)?.tunnelKeys.has(m[1]!) ?? false);
  }

  // ── compiled policies and change handling ───────────────────────────────────

  /** The compiled form of a stored policy, compiled on first use; null if it does not exist. */
  compiledFor(policyId: string): CompiledPolicy | null {
    let cp = this.compiled.get(policyId);
    if (cp === undefined) {
      const p = this.source.getPolicy(policyId);
      if (p === undefined) return null;
      cp = new CompiledPolicy(p, this.opts.toggles, this.cacheSize);
      this.compiled.set(policyId, cp);
    }
    return cp;
  }

  private addRuntime(d: Devbox): void {
    const compiled = d.network_policy_id === null ? this.defaultPolicy : this.compiledFor(d.network_policy_id);
    this.runtimes.set(d.id, { devbox: d, compiled });
    for (const a of d.addresses) this.byAddress.set(a, d.id);
    let acct = this.accounts.get(d.account_id);
    if (!acct) this.accounts.set(d.account_id, (acct = { addresses: new Set(), tunnelKeys: new Set() }));
    for (const a of d.addresses) acct.addresses.add(a);
    acct.tunnelKeys.add(d.tunnel_key);
  }

  private removeRuntime(id: string): void {
    const rt = this.runtimes.get(id);
    if (!rt) return;
    this.runtimes.delete(id);
    for (const a of rt.devbox.addresses) if (this.byAddress.get(a) === id) this.byAddress.delete(a);
    const acct = this.accounts.get(rt.devbox.account_id);
    if (acct) {
      for (const a of rt.devbox.addresses) acct.addresses.delete(a);
      acct.tunnelKeys.delete(rt.devbox.tunnel_key);
    }
  }

  private apply(change: SourceChange): void {
    if (change.kind === 'policy') {
      this.compiled.delete(change.id);
      for (const rt of this.runtimes.values()) {
        if (rt.devbox.network_policy_id === change.id) rt.compiled = this.compiledFor(change.id);
      }
    } else {
      this.removeRuntime(change.id);
      const d = this.source.getDevbox(change.id);
      if (d && d.status === 'running') this.addRuntime(d);
      else this.learned.forget(change.id);
      // The account's set of devbox addresses and tunnels changed: its cached answers may be stale.
      for (const cp of this.compiled.values()) if (cp.accountId === change.accountId) cp.clearCache();
    }
    this.events.emit('change', change);
  }
}

/** An IP literal's policy-independent facts (see PolicyEngine.ipFacts). */
interface IpFacts {
  /** Canonical form. */
  ip: string;
  words: IpWords | null;
  /** Guardrails.blocked(ip): the range that refuses it, or null. */
  blocked: GuardedRange | null;
  hostLocal: boolean;
}

/** A private_address denial naming the address and the guardrail range it fell in. */
function guardrailDenial(host: string, base: Pick<Decision, 'policyId' | 'policyVersion'>, hostKind: Decision['hostKind'], f: IpFacts): Decision {
  return { ...denial('private_address', host, base, hostKind), detail: { address: f.ip, range: f.blocked!.cidr, rangeName: f.blocked!.name } };
}
