/**
 * Per-host scope: which policies each host's sidecar receives. A host gets exactly the
 * policies its running devboxes (and active builds) placed on it reference, under
 * `policy.<host>.<account>.<id>`, and nothing of other hosts or accounts. The publisher keeps
 * this index (reference counts per host and policy) in memory: built from a snapshot of the
 * database, then moved forward by every change record it publishes, in seq order; each record
 * yields the policy keys to write (a policy changed, or newly referenced on a host) and the ones
 * to tombstone (the last reference on a host went).
 */
import type { Devbox, NetworkPolicy } from '../policy/model.js';
import type { PlaneRecord } from '../store/change-feed.js';
import { hostOf } from './keys.js';

interface Ref {
  host: string;
  policy: string;
}

export interface ScopeChanges {
  put: Array<{ host: string; policy: NetworkPolicy }>;
  drop: Array<{ host: string; accountId: string; policyId: string }>;
}

function refOf(d: Devbox | null, host: string | null): Ref | null {
  if (d === null || host === null || d.status !== 'running' || !d.network_policy_id) return null;
  return { host, policy: d.network_policy_id };
}

export class HostScope {
  private readonly devboxes = new Map<string, Ref>();
  /** policy id → host → running devboxes there referencing it. */
  private readonly refs = new Map<string, Map<string, number>>();
  private readonly policies = new Map<string, NetworkPolicy>();

  static from(snap: { policies: NetworkPolicy[]; devboxes: Devbox[] }): HostScope {
    const s = new HostScope();
    for (const p of snap.policies) s.policies.set(p.id, p);
    for (const d of snap.devboxes) {
      const ref = refOf(d, hostOf(d));
      if (ref) s.add(d.id, ref);
    }
    return s;
  }

  /** Every (host, policy) the bucket should hold now. */
  wanted(): Array<{ host: string; policy: NetworkPolicy }> {
    const out: Array<{ host: string; policy: NetworkPolicy }> = [];
    for (const [id, hosts] of this.refs) {
      const policy = this.policies.get(id);
      if (policy) for (const host of hosts.keys()) out.push({ host, policy });
    }
    return out;
  }

  /** Moves the index past one record; what the bucket's policy keys need for it. */
  apply(r: PlaneRecord): ScopeChanges {
    const out: ScopeChanges = { put: [], drop: [] };
    if (r.kind === 'policy') {
      if (r.value === null) this.policies.delete(r.id);
      else this.policies.set(r.id, r.value);
      for (const host of this.refs.get(r.id)?.keys() ?? []) {
        if (r.value === null) out.drop.push({ host, accountId: r.accountId, policyId: r.id });
        else out.put.push({ host, policy: r.value });
      }
      return out;
    }
    const before = this.devboxes.get(r.id) ?? null;
    const after = refOf(r.value, r.hostId);
    if (before?.host === after?.host && before?.policy === after?.policy) return out;
    if (before) {
      this.devboxes.delete(r.id);
      if (this.release(before)) {
        const p = this.policies.get(before.policy);
        out.drop.push({ host: before.host, accountId: p?.account_id ?? r.accountId, policyId: before.policy });
      }
    }
    if (after && this.add(r.id, after)) {
      const p = this.policies.get(after.policy);
      if (p) out.put.push({ host: after.host, policy: p });
    }
    return out;
  }

  /** True when it is the policy's first reference on that host. */
  private add(devbox: string, ref: Ref): boolean {
    this.devboxes.set(devbox, ref);
    let hosts = this.refs.get(ref.policy);
    if (!hosts) this.refs.set(ref.policy, (hosts = new Map()));
    const n = (hosts.get(ref.host) ?? 0) + 1;
    hosts.set(ref.host, n);
    return n === 1;
  }

  /** True when it was the policy's last reference on that host. */
  private release(ref: Ref): boolean {
    const hosts = this.refs.get(ref.policy);
    const n = (hosts?.get(ref.host) ?? 1) - 1;
    if (n > 0) {
      hosts!.set(ref.host, n);
      return false;
    }
    hosts?.delete(ref.host);
    if (hosts?.size === 0) this.refs.delete(ref.policy);
    return true;
  }
}
