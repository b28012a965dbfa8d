/**
 * Credentials in NATS URLs, and the NATS permissions docs/deployment.md documents, as documented.
 *
 * Defects: `user:pass@` in --nats/--follow was accepted by the settings but ignored by the
 * client (the sidecar never synced) and echoed in the start-up log, /readyz, a 409 body and
 * error lines; the documented `control` user lacked `$JS.API.INFO`, so its publisher never
 * published while sidecars reported live.
 *
 * Pinned: nats-server runs the `authorization` block copied out of docs/deployment.md (only the
 * "…" passwords filled in); a replica and a sidecar given `user:password@` URLs sync and carry
 * an update; a sidecar with a wrong password fails to connect; no password appears in any
 * output line, health answer, metrics or the sidecar's 409 body.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DnsUpstream, loopbackRecords, startDnsUpstream } from '../support/dns-upstream.js';
import { type NatsServer, startNats } from '../support/nats.js';
import { sharedPostgres } from '../support/postgres.js';
import { killAll } from '../support/serve-process.js';
import { type Node, api, createPolicy, decisionAt, health, registerDevbox, setHostnames, startReplica, startSidecar, tempDir, until } from './support.js';

const CONTROL_PASS = 'control-Pa55-in-url';
const SIDECAR_PASS = 'sidecar-Pa55-in-url';
const WRONG_PASS = 'wrong-Pa55-never-shown';
const tmp = tempDir();
let nats: NatsServer;
let dns: DnsUpstream;
let a: Node;
let h1: Node;
let bad: Node;

/** The documented `authorization { … }` block, verbatim but for the passwords. */
function documentedAuthorization(): string {
  const doc = readFileSync(join(import.meta.dirname, '../../docs/deployment.md'), 'utf8');
  const m = /^authorization \{\n[\s\S]*?\n\}$/m.exec(doc);
  if (!m) throw new Error('docs/deployment.md has no authorization { … } block');
  const users = m[0].match(/password: "…"/g) ?? [];
  expect(users).toHaveLength(2);
  return m[0].replace(/(user: control, password: )"…"/, `$1"${CONTROL_PASS}"`).replace(/(user: sidecar-h1, password: )"…"/, `$1"${SIDECAR_PASS}"`);
}

beforeAll(async () => {
  const conf = join(tmp.dir, 'nats.conf');
  writeFileSync(conf, `${documentedAuthorization()}\n`);
  nats = await startNats({ config: conf });
  dns = await startDnsUpstream({ records: loopbackRecords(['allowed.test', 'other.test']) });
  const db = await (await sharedPostgres()).createDatabase();
  const at = (user: string, pass: string) => nats.url.replace('nats://', `nats://${user}:${pass}@`);
  [a, h1, bad] = await Promise.all([startReplica(db, at('control', CONTROL_PASS)), startSidecar(at('sidecar-h1', SIDECAR_PASS), 'h1', join(tmp.dir, 'h1.db'), dns.port), startSidecar(at('sidecar-h1', WRONG_PASS), 'h1', join(tmp.dir, 'bad.db'), dns.port)]);
}, 300_000);

afterAll(async () => {
  await Promise.allSettled([a, h1, bad].filter(Boolean).map((n) => n.stop()));
  killAll();
  await dns?.close();
  await nats?.close();
  tmp.remove();
});

describe('NATS URL credentials and the documented permissions', () => {
  it('user:password@ URLs work with the documented users, and no password shows anywhere', async () => {
    const policy = await createPolicy(a.apiUrl, 'web', ['allowed.test']);
    const box = await registerDevbox(a.apiUrl, 'h1', policy);
    await until(async () => (await decisionAt(h1.apiUrl, box.id, 'allowed.test')) === 'allow', 90_000, 'h1 to sync through the documented sidecar user');
    await setHostnames(a.apiUrl, policy, ['other.test']);
    await until(async () => (await decisionAt(h1.apiUrl, box.id, 'other.test')) === 'allow', 90_000, 'an update to reach h1');
    await until(async () => (await health(a.apiUrl, '/readyz')).status === 200 && (await health(h1.apiUrl, '/readyz')).status === 200, 30_000, 'replica and sidecar ready');
    // The wrong password: refused by NATS, so this sidecar never has a snapshot.
    await until(async () => /Authorization Violation|authorization/i.test(bad.out()), 60_000, 'the wrong password to be refused');
    expect((await health(bad.apiUrl, '/readyz')).status).toBe(503);

    const shown: string[] = [a.out(), h1.out(), bad.out()];
    for (const n of [a, h1, bad]) {
      for (const path of ['/healthz', '/readyz']) shown.push(JSON.stringify((await health(n.apiUrl, path)).body));
      shown.push(await (await fetch(`${n.apiUrl}/metrics`)).text());
    }
    const refused = await api(h1.apiUrl, 'POST', '/v1/network-policies', { name: 'local' });
    expect(refused.status).toBe(409);
    shown.push(JSON.stringify(refused.body));
    for (const text of shown) for (const secret of [CONTROL_PASS, SIDECAR_PASS, WRONG_PASS]) expect(text).not.toContain(secret);
    expect(JSON.stringify(refused.body)).toContain(`following ${nats.url}`);
  }, 300_000);
});
