/**
 * The control plane's publisher: reads committed changes from the outbox (ChangeFeed) in seq
 * order and writes them into the fleet's KV bucket (keys.ts). Every replica runs one; they
 * publish the same records concurrently, so each key is written by compare-and-set on its KV
 * revision and only when the entry there carries an older seq: no key ever goes back.
 *
 * `meta.watermark` holds the highest seq published contiguously (also compare-and-set,
 * only ever raised). A replica starts from it and skips ahead to it, so a change whose
 * replica died between commit and publish is published by any live or restarted one.
 * A reader behind the outbox's retained window republishes a full snapshot (and tombstones
 * keys the database no longer has). NATS down: writes still commit (the outbox keeps them);
 * this loop retries and catches up when NATS returns.
 */
import type { KV } from '@nats-io/kv';
import { Kvm } from '@nats-io/kv';
import type { Logger } from 'pino';
import type { ChangeFeed, PlaneRecord } from '../store/change-feed.js';
import type { GatewayConfig } from '../config.js';
import { type FleetEntry, WATERMARK_KEY, decodeSeq, encodeEntry, entryOf, hostOf, keyOf, tombstoneFor } from './keys.js';
import { type FleetConnection, openConnection } from './nats.js';
import { fleetPublished, fleetPublishedSeq, fleetSnapshots } from './metrics.js';

const BATCH = 256;
/** A safety net: changes are announced (nudge), but another replica's commit may not be. */
const POLL_MS = 250;
const RETRY_MS = 500;

/** Test-only fault hook (docs/testing.md): die by SIGKILL between commit and publish. */
const FAULT = process.env.EGRESS_FLEET_FAULT === 'kill-before-publish';

export class Publisher {
  private conn: FleetConnection | null = null;
  private kv: KV | null = null;
  private cursor = 0;
  private closed = false;
  private wake: (() => void) | null = null;
  private pending = false;
  private faultFrom = Number.POSITIVE_INFINITY;
  private done: Promise<void> | null = null;

  constructor(
    private readonly config: GatewayConfig,
    private readonly feed: ChangeFeed,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.done = this.run();
  }

  /** A change committed: publish now rather than at the next poll. */
  nudge(): void {
    this.pending = true;
    this.wake?.();
  }

  private async run(): Promise<void> {
    if (FAULT) this.faultFrom = (await this.feed.lastSeq()) + 1;
    while (!this.closed) {
      try {
        await this.drain();
      } catch (e) {
        if (this.closed) break;
        this.log.warn({ event: 'fleet_publish_failed', err: (e as Error).message }, `publishing to NATS failed: ${(e as Error).message}; retrying`);
        await this.sleep(RETRY_MS);
        continue;
      }
      if (!this.pending) await this.sleep(POLL_MS);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.wake = () => {
        this.wake = null;
        done();
      };
    });
  }

  private async bucket(): Promise<KV> {
    if (this.conn === null) {
      const conn = await openConnection(this.config, this.config.nats!, 'publisher', this.log);
      if (this.closed) {
        await conn.close();
        throw new Error('closed');
      }
      this.conn = conn;
    }
    if (!this.conn.connected()) await this.conn.ready();
    if (this.kv === null) this.kv = await new Kvm(this.conn.nc).create(this.config.natsBucket, { history: 1 });
    return this.kv;
  }

  /** Publishes everything committed after the watermark, in seq order. */
  private async drain(): Promise<void> {
    this.pending = false;
    const kv = await this.bucket();
    this.cursor = Math.max(this.cursor, (await this.watermark(kv)).seq);
    for (;;) {
      const records = await this.feed.changesSince(this.cursor, BATCH);
      if (records.length === 0) {
        if ((await this.feed.lastSeq()) > this.cursor) await this.republish(kv);
        return;
      }
      if (records[0]!.seq !== this.cursor + 1) {
        await this.republish(kv);
        continue;
      }
      for (const r of records) {
        if (r.seq >= this.faultFrom) process.kill(process.pid, 'SIGKILL');
        // Agent resources (issue 21) are in the feed but not yet fanned out to sidecars.
        if (r.kind === 'policy' || r.kind === 'devbox') await this.put(kv, keyOf(r), entryOf(r));
        this.cursor = r.seq;
        fleetPublished.inc();
      }
      await this.raiseWatermark(kv, this.cursor);
      if (records.length < BATCH) return;
    }
  }

  /** Writes the entry unless the key holds one with the same or a newer seq. */
  private async put(kv: KV, key: string, entry: FleetEntry): Promise<void> {
    const data = encodeEntry(entry);
    for (;;) {
      const cur = await kv.get(key);
      try {
        if (cur === null) await kv.create(key, data);
        else {
          const seq = cur.operation === 'PUT' ? decodeSeq(cur.value) : null;
          if (seq !== null && seq >= entry.seq) return;
          await kv.update(key, data, cur.revision);
        }
        return;
      } catch (e) {
        if (!isRevisionConflict(e)) throw e;
        // Another replica wrote the key between the read and the write: read again.
      }
    }
  }

  private async watermark(kv: KV): Promise<{ seq: number; revision: number }> {
    const cur = await kv.get(WATERMARK_KEY);
    if (cur === null || cur.operation !== 'PUT') return { seq: 0, revision: cur?.revision ?? 0 };
    return { seq: decodeSeq(cur.value) ?? 0, revision: cur.revision };
  }

  private async raiseWatermark(kv: KV, seq: number): Promise<void> {
    const data = Buffer.from(JSON.stringify({ seq, at: Date.now() }));
    for (;;) {
      const cur = await this.watermark(kv);
      if (cur.seq >= seq) break;
      try {
        if (cur.revision === 0) await kv.create(WATERMARK_KEY, data);
        else await kv.update(WATERMARK_KEY, data, cur.revision);
        break;
      } catch (e) {
        if (!isRevisionConflict(e)) throw e;
      }
    }
    fleetPublishedSeq.set(seq);
  }

  /** Behind the outbox's window: the whole database, and tombstones for keys it no longer has. */
  private async republish(kv: KV): Promise<void> {
    const snap = await this.feed.snapshot();
    this.log.warn({ event: 'fleet_republish', seq: snap.seq, from: this.cursor, policies: snap.policies.length, devboxes: snap.devboxes.length }, `the outbox no longer holds the changes after seq ${this.cursor}; republishing a full snapshot as of seq ${snap.seq}`);
    const want = new Map<string, FleetEntry>();
    const records: PlaneRecord[] = [
      ...snap.policies.map((p): PlaneRecord => ({ seq: snap.seq, kind: 'policy', id: p.id, accountId: p.account_id, value: p })),
      ...snap.devboxes.map((d): PlaneRecord => ({ seq: snap.seq, kind: 'devbox', id: d.id, accountId: d.account_id, hostId: hostOf(d), value: d })),
    ];
    for (const r of records) want.set(keyOf(r), entryOf(r));
    for (const [key, entry] of want) await this.put(kv, key, entry);
    for (const filter of ['policy.>', 'devbox.>']) {
      for await (const key of await kv.keys(filter)) {
        if (want.has(key)) continue;
        const tomb = tombstoneFor(key, snap.seq);
        if (tomb) await this.put(kv, key, tomb);
      }
    }
    this.cursor = Math.max(this.cursor, snap.seq);
    await this.raiseWatermark(kv, this.cursor);
    fleetSnapshots.inc();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wake?.();
    await this.conn?.close();
    // A first connection still being attempted (NATS down since start) is not waited for.
    await Promise.race([this.done?.catch(() => {}), new Promise((r) => setTimeout(r, 1000).unref())]);
  }
}

function isRevisionConflict(e: unknown): boolean {
  const msg = (e as Error).message ?? '';
  return /wrong last sequence|key exists|10071|10164/i.test(msg) || (e as { api_error?: { err_code?: number } }).api_error?.err_code === 10071;
}
