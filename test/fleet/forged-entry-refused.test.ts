/**
 * Entries signed by the control plane, verified by sidecars. Defect: entries were unsigned, so
 * anyone who could write the bucket changed what every sidecar enforced, and a forged entry with
 * a huge seq was never overwritten by the control plane.
 *
 * Pinned: a replica signs with --fleet-signing-key, a sidecar verifies with
 * --fleet-verify-keys. A forged policy entry (another key's signature, a huge seq, a looser
 * allowlist) written straight into the bucket is refused by the sidecar — counted, logged — and
 * the good entry stays enforced; the replica notices the forgery and republishes over it, and
 * its next real change for that key reaches the sidecar despite the forged seq; a sidecar
 * restarted around another forgery keeps the good entry. A devbox entry carries no operator metadata.
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FleetBase, type Node, api, createPolicy, decisionAt, fleetBase, setHostnames, startReplica, startSidecar, until } from './support.js';

let base: FleetBase;
let a: Node;
let h1: Node | undefined;
let sidecarArgs: [string, string, string, number, string[]];

function keyFiles(dir: string, name: string): { priv: string; pub: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const priv = join(dir, `${name}.key`);
  const pub = join(dir, `${name}.pub`);
  writeFileSync(priv, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }));
  return { priv, pub };
}

async function refusedCount(n: Node): Promise<number> {
  const text = await (await fetch(`${n.apiUrl}/metrics`)).text();
  return [...text.matchAll(/^egress_policy_entries_refused_total\{reason="(?:bad_signature|unknown_key|unsigned)"\} (\S+)$/gm)].reduce((s, m) => s + Number(m[1]), 0);
}

beforeAll(async () => {
  base = await fleetBase();
  const control = keyFiles(base.dir, 'control');
  sidecarArgs = [base.nats.url, 'h1', join(base.dir, 'h1.db'), base.dns.port, ['--fleet-verify-keys', control.pub]];
  [a, h1] = await Promise.all([startReplica(base.controlDb, base.nats.url, {}, ['--fleet-signing-key', control.priv]), startSidecar(...sidecarArgs)]);
}, 300_000);

afterAll(() => base?.close([a, h1]));

describe('forged bucket entries', () => {
  it('are refused, counted and logged, never evict the good entry, and are overwritten by the next real change', async () => {
    const policy = await createPolicy(a.apiUrl, 'web', ['allowed.test']);
    const r = await api<{ id: string }>(a.apiUrl, 'POST', '/v1/devboxes', { network: { host_id: 'h1' }, launch_parameters: { network_policy_id: policy }, metadata: { owner: 'team-secret-name' } });
    expect(r.status).toBe(200);
    const box = r.body.id;
    await until(async () => (await decisionAt(h1!.apiUrl, box, 'allowed.test')) === 'allow', 90_000, 'h1 to sync');

    const nc = await connect({ servers: base.nats.url });
    const kv = await new Kvm(nc).open('egress-policy');
    const key = `policy.h1.default.${policy}`;
    const attacker = generateKeyPairSync('ed25519');
    const forge = async (hosts: string[]) => {
      const cur = JSON.parse(new TextDecoder().decode((await kv.get(key))!.value)) as Record<string, any>;
      const { kid: _k, sig: _s, ...body } = cur;
      const forged = { ...body, seq: 1e12, value: { ...body.value, egress: { ...body.value.egress, allowed_hostnames: hosts } } };
      const sig = sign(null, Buffer.from(`${key}\n${JSON.stringify(forged)}`), attacker.privateKey).toString('base64');
      await kv.put(key, JSON.stringify({ ...forged, kid: cur.kid, sig }));
    };
    try {
      const devboxEntry = JSON.parse(new TextDecoder().decode((await kv.get(`devbox.h1.${box}`))!.value)) as { value: { metadata: object; password_hash: string } };
      expect(devboxEntry.value.metadata).toEqual({});
      expect(devboxEntry.value.password_hash).toMatch(/^[0-9a-f]{64}$/);

      await forge(['allowed.test', 'other.test']);
      await until(async () => (await refusedCount(h1!)) >= 1, 30_000, 'the sidecar to refuse the forged entry');
      expect(h1!.out()).toMatch(/"event":"fleet_entry_refused"[^\n]*"reason":"bad_signature"/);
      expect(await decisionAt(h1!.apiUrl, box, 'other.test')).toBe('deny');
      expect(await decisionAt(h1!.apiUrl, box, 'allowed.test')).toBe('allow');

      // The control plane's next change to that key overwrites the forgery despite its seq.
      await setHostnames(a.apiUrl, policy, ['allowed.test', 'g0.test']);
      await until(async () => (await decisionAt(h1!.apiUrl, box, 'g0.test')) === 'allow', 60_000, 'the real update to reach h1 past the forged seq');
      expect(a.out()).toMatch(/"event":"fleet_forged_entry_replaced"/);

      // A restarted sidecar that meets a forgery (resuming from its file) keeps the good entry.
      await forge(['allowed.test', 'g0.test', 'other.test']);
      await h1!.stop();
      h1 = await startSidecar(...sidecarArgs);
      await until(async () => /"event":"fleet_(resumed|resync)"/.test(h1!.out()), 60_000, 'the restarted sidecar to follow again');
      expect(await decisionAt(h1.apiUrl, box, 'g0.test')).toBe('allow');
      expect(await decisionAt(h1.apiUrl, box, 'other.test')).toBe('deny');
      // Every forgery was noticed by the replica, which republished over it.
      expect(a.out().match(/"event":"fleet_forged_entry_detected"/g)?.length ?? 0).toBeGreaterThanOrEqual(2);
    } finally {
      await nc.close();
    }
  }, 400_000);
});
