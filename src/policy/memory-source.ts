/**
 * A PolicySource held in memory: policies and devboxes put in by code. Used by `check
 * --file` (explain a policy file without a store), the decision benchmark and unit
 * tests; a fleet follower could keep its last good copy in one.
 */
import { type Devbox, type EgressRules, type Enforcement, type NetworkPolicy, DEFAULT_EGRESS, completeEgress } from './model.js';
import type { PolicySource, SourceChange } from './source.js';

export { DEFAULT_EGRESS };

export class MemorySource implements PolicySource {
  private readonly policies = new Map<string, NetworkPolicy>();
  private readonly devboxes = new Map<string, Devbox>();
  private readonly listeners = new Set<(c: SourceChange) => void>();
  private seq = 0;

  getPolicy(id: string): NetworkPolicy | undefined {
    return this.policies.get(id);
  }

  getDevbox(id: string): Devbox | undefined {
    return this.devboxes.get(id);
  }

  runningDevboxes(): Devbox[] {
    return [...this.devboxes.values()].filter((d) => d.status === 'running');
  }

  onChange(listener: (change: SourceChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Creates or replaces a policy (version bumped on replace) and tells listeners. */
  putPolicy(p: { id?: string; account_id?: string; name?: string; description?: string | null; egress?: Partial<EgressRules>; enforcement?: Enforcement }): NetworkPolicy {
    const id = p.id ?? `npol_mem${++this.seq}`;
    const prev = this.policies.get(id);
    const now = Date.now();
    const policy: NetworkPolicy = {
      id,
      account_id: p.account_id ?? prev?.account_id ?? 'acct',
      name: p.name ?? prev?.name ?? id,
      description: p.description ?? null,
      egress: completeEgress(DEFAULT_EGRESS, p.egress),
      enforcement: p.enforcement ?? 'enforce',
      create_time_ms: prev?.create_time_ms ?? now,
      update_time_ms: now,
      version: (prev?.version ?? 0) + 1,
    };
    this.policies.set(id, policy);
    this.emit({ kind: 'policy', id, accountId: policy.account_id });
    return policy;
  }

  deletePolicy(id: string): void {
    const p = this.policies.get(id);
    if (!p) return;
    this.policies.delete(id);
    this.emit({ kind: 'policy', id, accountId: p.account_id });
  }

  /** Creates or replaces a devbox (running unless told otherwise) and tells listeners. */
  putDevbox(d: Partial<Devbox> & { id: string }): Devbox {
    const prev = this.devboxes.get(d.id);
    const devbox: Devbox = {
      account_id: 'acct',
      name: null,
      status: 'running',
      network_policy_id: null,
      addresses: [],
      metadata: {},
      tunnel_key: `k${d.id.replace(/[^a-z0-9]/gi, '').toLowerCase()}`,
      password_hash: '0'.repeat(64),
      create_time_ms: Date.now(),
      end_time_ms: null,
      ...prev,
      ...d,
    };
    this.devboxes.set(devbox.id, devbox);
    this.emit({ kind: 'devbox', id: devbox.id, accountId: devbox.account_id });
    return devbox;
  }

  /** Stores a policy exactly as given (a follower's copy of the control plane's) and tells listeners. */
  setPolicy(p: NetworkPolicy): void {
    this.policies.set(p.id, p);
    this.emit({ kind: 'policy', id: p.id, accountId: p.account_id });
  }

  /** Stores a devbox exactly as given and tells listeners. */
  setDevbox(d: Devbox): void {
    this.devboxes.set(d.id, d);
    this.emit({ kind: 'devbox', id: d.id, accountId: d.account_id });
  }

  deleteDevbox(id: string): void {
    const d = this.devboxes.get(id);
    if (!d) return;
    this.devboxes.delete(id);
    this.emit({ kind: 'devbox', id, accountId: d.account_id });
  }

  /** Every id held, for replacing the whole content with a snapshot. */
  ids(): { policies: string[]; devboxes: string[] } {
    return { policies: [...this.policies.keys()], devboxes: [...this.devboxes.keys()] };
  }

  private emit(change: SourceChange): void {
    for (const l of this.listeners) l(change);
  }
}
