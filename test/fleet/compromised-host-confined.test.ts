/**
 * A compromised host, holding its sidecar's NATS user exactly as docs/deployment.md documents
 * it (the block copied from the page; a second host's user is the same list with its host id),
 * tries every read and write of other hosts' data it could attempt:
 * - subscribing to everyone's inboxes (`_INBOX.>`), another host's inbox, the bucket's subjects;
 * - a watch over another host's devboxes; KV gets; KV puts; deleting a consumer;
 * - a permitted `STREAM.INFO` request whose reply subject is another host's devbox key (JetStream
 *   writes its answer into the bucket).
 * None of it reads anything; the last one overwrites a key, and the fleet heals: the victim's
 * sidecar (verifying signatures) keeps allowing its devbox, even after a restart, and a replica
 * notices the forged value and republishes over it.
 */
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FleetBase, type Node, createPolicy, decisionAt, fleetBase, registerDevbox, startReplica, startSidecar, until } from './support.js';
import { startNats } from '../support/nats.js';

const PASS = { control: 'control-pw-1', h1: 'h1-pw-1', h2: 'h2-pw-1' };
let base: FleetBase;
let nats: Awaited<ReturnType<typeof startNats>>;
let a: Node;
let h1: Node;
let h2: Node;
let keys: { priv: string; pub: string };

function natsConfig(): string {
  const doc = readFileSync(join(import.meta.dirname, '../../docs/deployment.md'), 'utf8');
  const block = /^authorization \{\n[\s\S]*?\n\}$/m.exec(doc)![0];
  const h1User = /^ {4}\{ user: sidecar-h1,[\s\S]*?\] \} \}$/m.exec(block)![0];
  const h2User = h1User.replaceAll('h1', 'h2');
  return block
    .replace(h1User, `${h1User}\n${h2User}`)
    .replace('user: control, password: "…"', `user: control, password: "${PASS.control}"`)
    .replace('user: sidecar-h1, password: "…"', `user: sidecar-h1, password: "${PASS.h1}"`)
    .replace('user: sidecar-h2, password: "…"', `user: sidecar-h2, password: "${PASS.h2}"`);
}

const as = (user: string, pass: string) => nats.url.replace('nats://', `nats://${user}:${pass}@`);

beforeAll(async () => {
  base = await fleetBase();
  const conf = join(base.dir, 'nats.conf');
  writeFileSync(conf, `${natsConfig()}\n`);
  nats = await startNats({ config: conf });
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  keys = { priv: join(base.dir, 'k.key'), pub: join(base.dir, 'k.pub') };
  writeFileSync(keys.priv, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(keys.pub, publicKey.export({ type: 'spki', format: 'pem' }));
  [a, h1, h2] = await Promise.all([
    startReplica(base.controlDb, as('control', PASS.control), {}, ['--fleet-signing-key', keys.priv]),
    startSidecar(as('sidecar-h1', PASS.h1), 'h1', join(base.dir, 'h1.db'), base.dns.port, ['--fleet-verify-keys', keys.pub]),
    startSidecar(as('sidecar-h2', PASS.h2), 'h2', join(base.dir, 'h2.db'), base.dns.port, ['--fleet-verify-keys', keys.pub]),
  ]);
}, 300_000);

afterAll(async () => {
  await base?.close([a, h1, h2]);
  await nats?.close();
});

/** Resolves with the error, or null when `f` succeeded. */
async function refused(f: () => Promise<unknown>): Promise<string | null> {
  try {
    await f();
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

describe('a compromised host with the documented per-host NATS user', () => {
  it("reads nothing of another host's, and the key it can overwrite is healed", async () => {
    const policy = await createPolicy(a.apiUrl, 'web', ['allowed.test']);
    const mine = await registerDevbox(a.apiUrl, 'h1', policy);
    const victim = await registerDevbox(a.apiUrl, 'h2', policy);
    await until(async () => (await decisionAt(h1.apiUrl, mine.id, 'allowed.test')) === 'allow' && (await decisionAt(h2.apiUrl, victim.id, 'allowed.test')) === 'allow', 90_000, 'both sidecars to sync under their users');

    const attacker: NatsConnection = await connect({ servers: nats.url, user: 'sidecar-h1', pass: PASS.h1, inboxPrefix: '_INBOX_h1' });
    try {
      const heard: string[] = [];
      for (const subject of ['_INBOX.>', '_INBOX_h2.>', '$KV.egress-policy.>', '>']) {
        const sub = attacker.subscribe(subject);
        void (async () => {
          for await (const m of sub) heard.push(m.subject);
        })().catch(() => {});
      }
      const kv = await new Kvm(attacker).open('egress-policy');
      const victimKey = `devbox.h2.${victim.id}`;
      expect(await refused(async () => kv.watch({ key: 'devbox.h2.>' }))).toMatch(/Permissions Violation/);
      expect(await refused(() => kv.get(victimKey))).not.toBeNull();
      expect(await refused(() => kv.put(`policy.h2.default.${policy}`, '{}'))).not.toBeNull();
      const jsm = await jetstreamManager(attacker);
      expect(await refused(() => jsm.consumers.delete('KV_egress-policy', 'any'))).toMatch(/Permissions Violation|timeout/i);
      // Traffic meanwhile: another devbox on h2, answered to h2's inbox and the control plane's.
      const second = await registerDevbox(a.apiUrl, 'h2', policy);
      await until(async () => (await decisionAt(h2.apiUrl, second.id, 'allowed.test')) === 'allow', 60_000, 'h2 to get its second devbox');
      expect(heard).toEqual([]);

      // The permitted STREAM.INFO, answered into another host's key.
      attacker.publish('$JS.API.STREAM.INFO.KV_egress-policy', '', { reply: `$KV.egress-policy.${victimKey}` });
      await attacker.flush();
      await until(async () => /"event":"fleet_forged_entry_detected"/.test(a.out()), 30_000, 'the replica to notice the forged value');
      const control = await connect({ servers: nats.url, user: 'control', pass: PASS.control });
      try {
        const ckv = await new Kvm(control).open('egress-policy');
        await until(
          async () => {
            const e = await ckv.get(victimKey);
            return e !== null && /"sig":/.test(new TextDecoder().decode(e.value));
          },
          30_000,
          'the replica to republish the genuine entry',
        );
      } finally {
        await control.close();
      }
      expect(await decisionAt(h2.apiUrl, victim.id, 'allowed.test')).toBe('allow');
      await h2.stop();
      h2 = await startSidecar(as('sidecar-h2', PASS.h2), 'h2', join(base.dir, 'h2.db'), base.dns.port, ['--fleet-verify-keys', keys.pub]);
      await until(async () => /"event":"fleet_(resumed|resync)"/.test(h2.out()), 60_000, 'h2 to follow again');
      expect(await decisionAt(h2.apiUrl, victim.id, 'allowed.test')).toBe('allow');
    } finally {
      await attacker.close().catch(() => {});
    }
  }, 400_000);
});
