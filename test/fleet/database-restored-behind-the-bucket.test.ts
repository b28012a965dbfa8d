/**
 * Defect: a restored database (or a failover that lost commits) silently dropped acknowledged
 * writes. NATS remembered a higher change number than the restored database, and the
 * publishers skipped every new change below it: a tightening was never enforced and a devbox
 * registered afterwards was 200 on the control plane and unknown on its sidecar.
 *
 * Pinned with a real restore: pg_dump the control plane's database, write on, then pg_restore
 * the older dump (--clean) under the running replica. The publisher notices the database is
 * behind the bucket and republishes it under a new epoch, which the sidecar accepts; a
 * tightening after the restore is enforced and a devbox registered after it is allowed.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FleetBase, type Node, createPolicy, decisionAt, fleetBase, health, registerDevbox, setHostnames, startReplica, startSidecar, until } from './support.js';

let base: FleetBase;
let a: Node;
let h1: Node;

/** A client binary of the installed PostgreSQL (Debian package `postgresql`). */
function pgBin(name: string): string {
  const root = '/usr/lib/postgresql';
  const v = existsSync(root) ? readdirSync(root).find((d) => existsSync(join(root, d, 'bin', name))) : undefined;
  if (v === undefined) throw new Error(`${name} not found under ${root}: install the Debian package postgresql`);
  return join(root, v, 'bin', name);
}

function run(bin: string, args: string[]): void {
  const r = spawnSync(bin, args, { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`${bin} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
}

beforeAll(async () => {
  base = await fleetBase();
  [a, h1] = await Promise.all([startReplica(base.controlDb, base.nats.url), startSidecar(base.nats.url, 'h1', join(base.dir, 'h1.db'), base.dns.port)]);
}, 300_000);

afterAll(() => base?.close([a, h1]));

describe('the control-plane database restored behind the bucket', () => {
  it('a new epoch is published: a tightening after the restore is enforced and a devbox registered after it works', async () => {
    const policy = await createPolicy(a.apiUrl, 'web', ['allowed.test']);
    const box = await registerDevbox(a.apiUrl, 'h1', policy);
    await until(async () => (await decisionAt(h1.apiUrl, box.id, 'allowed.test')) === 'allow', 90_000, 'h1 to sync');

    const dump = join(base.dir, 'control.dump');
    run(pgBin('pg_dump'), ['-Fc', '-f', dump, base.controlDb]);
    // Written after the dump: the bucket's watermark moves past what the dump holds.
    for (let i = 0; i < 6; i++) await setHostnames(a.apiUrl, policy, ['allowed.test', `g${i}.test`]);
    await until(async () => (await decisionAt(h1.apiUrl, box.id, 'g5.test')) === 'allow', 90_000, 'h1 to apply the writes after the dump');
    const before = (await health(h1.apiUrl)).body.snapshot as { epoch: number; seq: number };

    run(pgBin('pg_restore'), ['--clean', '--if-exists', '--single-transaction', '-d', base.controlDb, dump]);

    // The restored database is the truth: g5.test is gone again (the old epoch's seq is higher).
    await until(async () => (await decisionAt(h1.apiUrl, box.id, 'g5.test')) === 'deny' && (await decisionAt(h1.apiUrl, box.id, 'allowed.test')) === 'allow', 90_000, 'h1 to take the restored database');
    await setHostnames(a.apiUrl, policy, ['other.test']);
    const later = await registerDevbox(a.apiUrl, 'h1', policy);
    await until(
      async () => (await decisionAt(h1.apiUrl, box.id, 'allowed.test')) === 'deny' && (await decisionAt(h1.apiUrl, box.id, 'other.test')) === 'allow' && (await decisionAt(h1.apiUrl, later.id, 'other.test')) === 'allow',
      90_000,
      'the tightening and the later devbox to reach h1',
    );
    const after = (await health(h1.apiUrl)).body.snapshot as { epoch: number; seq: number };
    expect(after.epoch).toBeGreaterThan(before.epoch);
    expect(a.out()).toMatch(/"event":"fleet_new_epoch"[^\n]*the database is behind/);
  }, 400_000);
});
