/**
 * The sidecar's local snapshot (src/fleet/local-snapshot.ts) never goes back within an epoch:
 * an entry whose (epoch, seq) is not newer than the one it holds for that key is refused (a
 * replayed, reordered or forged-old entry cannot undo a tightening), an entry of an epoch
 * before the snapshot's is refused, and a newer epoch's entry replaces any seq of the old one
 * (the database was restored: its lower seqs are the truth now).
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import type { NetworkPolicy } from '../../src/policy/model.js';
import { LocalSnapshot } from '../../src/fleet/local-snapshot.js';
import type { FleetEntry } from '../../src/fleet/keys.js';
import { migrate } from '../../src/store/migrations.js';
import { tempDir } from './support.js';

const tmp = tempDir();
afterAll(() => tmp.remove());

function policy(hosts: string[]): NetworkPolicy {
  return { id: 'npol_1', account_id: 'acct', name: 'p', description: null, egress: { allowed_hostnames: hosts }, enforcement: 'enforce', version: 1, create_time_ms: 1, update_time_ms: 1 } as unknown as NetworkPolicy;
}
const entry = (epoch: number, seq: number, hosts: string[]): FleetEntry => ({ epoch, seq, kind: 'policy', id: 'npol_1', account_id: 'acct', value: policy(hosts) });

function open(name: string): { snap: LocalSnapshot; hosts(): string[] } {
  const path = join(tmp.dir, name);
  const db = new Database(path);
  migrate(db);
  const snap = new LocalSnapshot(path);
  return {
    snap,
    hosts: () => (JSON.parse((db.prepare('SELECT egress FROM network_policies WHERE id = ?').pluck().get('npol_1') as string) ?? '{}') as { allowed_hostnames: string[] }).allowed_hostnames,
  };
}

describe('the local snapshot never goes back within an epoch', () => {
  it('refuses an entry not newer than the one held, and one from an older epoch', () => {
    const { snap, hosts } = open('a.db');
    snap.replace([entry(10, 5, ['tight.test'])], 7, 10, 5);
    expect(snap.apply([{ revision: 8, entry: entry(10, 4, ['loose.test']) }])).toEqual({ changed: 0, refused: 1 });
    expect(snap.apply([{ revision: 9, entry: entry(10, 5, ['loose.test']) }])).toEqual({ changed: 0, refused: 1 });
    expect(snap.apply([{ revision: 10, entry: entry(9, 99, ['loose.test']) }])).toEqual({ changed: 0, refused: 1 });
    expect(hosts()).toEqual(['tight.test']);
    expect(snap.state()).toMatchObject({ epoch: 10, seq: 5 });
    snap.close();
  });

  it('a relist keeps what it holds for a key whose bucket value was refused, and drops keys gone from the bucket', () => {
    const { snap, hosts } = open('c.db');
    snap.replace([entry(10, 5, ['tight.test'])], 7, 10, 5);
    expect(snap.replace([], 8, 10, 6, new Set(['policy:npol_1']))).toBe(0);
    expect(hosts()).toEqual(['tight.test']);
    expect(snap.replace([], 9, 10, 7)).toBe(1);
    expect(hosts()).toBeUndefined();
    snap.close();
  });

  it('takes a newer epoch whatever its seq, then a newer seq in it', () => {
    const { snap, hosts } = open('b.db');
    snap.replace([entry(10, 50, ['old.test'])], 7, 10, 50);
    expect(snap.apply([{ revision: 8, entry: entry(11, 3, ['restored.test']) }]).changed).toBe(1);
    expect(hosts()).toEqual(['restored.test']);
    expect(snap.apply([{ revision: 9, entry: entry(11, 4, ['later.test']) }]).changed).toBe(1);
    expect(hosts()).toEqual(['later.test']);
    snap.close();
  });
});
