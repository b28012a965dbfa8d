/**
 * The denial record stays bounded and never makes a door wait: at most N destinations per
 * devbox (newest kept), nothing older than the retention, and a store locked by another
 * process makes the batch wait for the next flush instead of blocking record() or losing it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { openStore, type Store } from '../../src/store/index.js';
import { DenialRecorder } from '../../src/doors/floor/denial-events.js';
import { denial, reportOnly } from '../../src/policy/decision.js';
import { tempDir } from '../support/temp.js';

const log = pino({ level: 'silent' });
let store: Store;
let recorder: DenialRecorder;

afterEach(() => {
  recorder?.close();
  store?.close();
});

function setup(opts: { maxPerDevbox: number; retentionHours?: number }) {
  const path = join(tempDir('events'), 'e.db');
  store = openStore(path);
  const { devbox } = store.devboxes.create('acct', { addresses: ['127.0.0.5'] });
  recorder = new DenialRecorder((id) => (id === devbox.id ? 'acct' : undefined), { writeDenialEvents: (rows, limits) => store.denialEvents.write(rows, limits) }, { flushMs: 60_000, retentionHours: opts.retentionHours ?? 1, ...opts }, log);
  const who = { devboxId: devbox.id, via: 'address' as const, source: '127.0.0.5' };
  return { path, devbox, who };
}

const list = (devboxId: string) => store.denialEvents.list('acct', { devboxId, limit: 5000 }).items;

describe('denial record bounds', () => {
  it('keeps at most --events-max-per-devbox destinations per devbox, the most recently seen', async () => {
    const { devbox, who } = setup({ maxPerDevbox: 3 });
    for (let i = 0; i < 5; i++) {
      recorder.record(who, 'http', denial('not_allowlisted', `h${i}.example.com`), 80);
      recorder.flush();
      await new Promise((r) => setTimeout(r, 3)); // distinct last_seen times
    }
    expect(
      list(devbox.id)
        .map((e) => e.host)
        .sort(),
    ).toEqual(['h2.example.com', 'h3.example.com', 'h4.example.com']);
  });

  it('merges repeats into one row with a count, denials and would-denials apart', () => {
    const { devbox, who } = setup({ maxPerDevbox: 100 });
    for (let i = 0; i < 3; i++) recorder.record(who, 'dns', denial('not_allowlisted', 'x.example.com'), 53);
    recorder.flush();
    recorder.record(who, 'dns', denial('not_allowlisted', 'x.example.com'), 53);
    recorder.record(who, 'dns', reportOnly(denial('not_allowlisted', 'x.example.com')), 53);
    recorder.flush();
    const rows = list(devbox.id);
    expect(rows.map((r) => [r.decision, r.count]).sort()).toEqual([
      ['deny', 4],
      ['would_deny', 1],
    ]);
    expect(rows[0]!.first_seen_ms).toBeLessThanOrEqual(rows[0]!.last_seen_ms);
  });

  it('drops rows past the retention at the next write', () => {
    const { path, devbox, who } = setup({ maxPerDevbox: 100 });
    recorder.record(who, 'http', denial('not_allowlisted', 'old.example.com'), 80);
    recorder.flush();
    const raw = new Database(path);
    raw.prepare('UPDATE egress_events SET last_seen_ms = last_seen_ms - 2 * 3600000').run();
    raw.close();
    recorder.record(who, 'http', denial('not_allowlisted', 'new.example.com'), 80);
    recorder.flush();
    expect(list(devbox.id).map((e) => e.host)).toEqual(['new.example.com']);
  });

  it('a store locked by another process: record() does not wait, the batch is written once the lock goes', () => {
    const { path, devbox, who } = setup({ maxPerDevbox: 100 });
    const other = new Database(path);
    other.prepare('BEGIN IMMEDIATE').run();
    recorder.record(who, 'connect', denial('not_allowlisted', 'busy.example.com'), 443);
    const started = performance.now();
    recorder.flush(); // fails on the lock (short busy timeout), keeps the batch
    const flushMs = performance.now() - started;
    recorder.record(who, 'connect', denial('not_allowlisted', 'busy.example.com'), 443);
    other.prepare('COMMIT').run();
    other.close();
    expect(list(devbox.id)).toEqual([]);
    recorder.flush();
    expect(list(devbox.id).map((e) => [e.host, e.count])).toEqual([['busy.example.com', 2]]);
    // The store's own busy timeout is 5 s; the record's writer gives up within its 50 ms (generous bound for a loaded box).
    expect(flushMs).toBeLessThan(2000);
  });

  it('records nothing with --events-max-per-devbox 0', () => {
    const { devbox, who } = setup({ maxPerDevbox: 0 });
    recorder.record(who, 'http', denial('not_allowlisted', 'a.example.com'), 80);
    recorder.flush();
    expect(list(devbox.id)).toEqual([]);
  });
});
