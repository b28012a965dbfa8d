/**
 * The publisher's per-host scope index (src/fleet/host-scope.ts): a host receives a policy when
 * the first running devbox placed on it references it, every change of it while referenced,
 * and a tombstone when the last one goes; a policy no devbox references is on no host; a devbox
 * switching policy moves the reference; records replayed from before the snapshot the index was
 * built from (a replica starting behind the watermark) converge on the same end state.
 */
import { describe, expect, it } from 'vitest';
import type { Devbox, NetworkPolicy } from '../../src/policy/model.js';
import type { PlaneRecord } from '../../src/store/change-feed.js';
import { HostScope } from '../../src/fleet/host-scope.js';

const pol = (id: string, v = 1): NetworkPolicy => ({ id, account_id: 'acct', name: id, description: null, egress: {}, enforcement: 'enforce', version: v, create_time_ms: 1, update_time_ms: 1 }) as unknown as NetworkPolicy;
const box = (id: string, host: string | null, policy: string | null, status = 'running'): Devbox => ({ id, account_id: 'acct', status, network_policy_id: policy, host_id: host }) as unknown as Devbox;
let seq = 0;
const P = (p: NetworkPolicy | null, id = p?.id ?? ''): PlaneRecord => ({ seq: ++seq, kind: 'policy', id, accountId: 'acct', value: p });
const D = (d: Devbox): PlaneRecord => ({ seq: ++seq, kind: 'devbox', id: d.id, accountId: 'acct', hostId: d.host_id ?? null, value: d });
const puts = (c: ReturnType<HostScope['apply']>) => c.put.map((x) => `${x.host}:${x.policy.id}@${x.policy.version}`);
const drops = (c: ReturnType<HostScope['apply']>) => c.drop.map((x) => `${x.host}:${x.policyId}`);

describe('host scope: reference counts per host and policy', () => {
  it('first reference puts, later ones do not; updates go to every referencing host; the last reference drops', () => {
    const s = HostScope.from({ policies: [], devboxes: [] });
    expect(puts(s.apply(P(pol('p1'))))).toEqual([]);
    expect(puts(s.apply(P(pol('unused'))))).toEqual([]);
    expect(puts(s.apply(D(box('d1', 'h1', 'p1'))))).toEqual(['h1:p1@1']);
    expect(puts(s.apply(D(box('d2', 'h1', 'p1'))))).toEqual([]);
    expect(puts(s.apply(D(box('d3', 'h2', 'p1'))))).toEqual(['h2:p1@1']);
    expect(puts(s.apply(D(box('d4', null, 'p1'))))).toEqual([]);
    expect(puts(s.apply(P(pol('p1', 2)))).sort()).toEqual(['h1:p1@2', 'h2:p1@2']);
    expect(drops(s.apply(D(box('d1', 'h1', 'p1', 'shutdown'))))).toEqual([]);
    expect(drops(s.apply(D(box('d2', 'h1', 'p1', 'shutdown'))))).toEqual(['h1:p1']);
    expect(s.wanted().map((w) => `${w.host}:${w.policy.id}`)).toEqual(['h2:p1']);
  });

  it('a devbox switching policy moves its reference', () => {
    const s = HostScope.from({ policies: [pol('a'), pol('b')], devboxes: [box('d', 'h1', 'a')] });
    const c = s.apply(D(box('d', 'h1', 'b')));
    expect(puts(c)).toEqual(['h1:b@1']);
    expect(drops(c)).toEqual(['h1:a']);
  });

  it('records replayed from before the snapshot converge on the snapshot state', () => {
    const early = [P(pol('p')), D(box('d1', 'h1', 'p')), P(pol('p', 2)), D(box('d1', 'h1', 'p', 'shutdown')), D(box('d2', 'h2', 'p'))];
    const s = HostScope.from({ policies: [pol('p', 2)], devboxes: [box('d2', 'h2', 'p')] });
    for (const r of early) s.apply(r);
    expect(s.wanted().map((w) => `${w.host}:${w.policy.id}@${w.policy.version}`)).toEqual(['h2:p@2']);
  });
});
