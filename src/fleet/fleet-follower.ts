/**
 * The sidecar's follower (`serve --follow nats://… --host-id NAME`): keeps the local snapshot
 * (local-snapshot.ts) equal to the fleet bucket's `policy.>` and `devbox.<host>.>`.
 *
 * On every (re)connection it resyncs: both key ranges are read whole (the last value of each
 * key), built in memory and swapped into the snapshot in one transaction, so the doors see the
 * old state or the new one, never a mix; a sidecar away for longer than the bucket keeps
 * history is thereby covered like any other. After the swap, entries are applied as NATS
 * delivers them, in order (each range in stream order; a batch that arrived together in one
 * transaction). While NATS is down the doors keep enforcing the last good snapshot (fail-static);
 * nothing is ever dropped to allow, and a devbox the snapshot does not hold is unknown_client.
 */
import { Kvm, type KV, type KvWatchEntry } from '@nats-io/kv';
import { jetstreamManager } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import type { GatewayConfig } from '../config.js';
import { POLICY_FILTER, decodeEntry, hostFilter } from './keys.js';
import type { LocalSnapshot, Revised } from './local-snapshot.js';
import { type FleetConnection, openConnection } from './nats.js';
import { followerGauges as g } from './metrics.js';

const RETRY_MS = 500;
/** A snapshot older than this (not live on NATS) is logged as behind, then once a minute. */
const STALE_AFTER_MS = 30_000;
const TOUCH_EVERY_MS = 1000;
/** A resync whose initial read stalls this long is abandoned and started again. */
const RESYNC_TIMEOUT_MS = 30_000;

export interface FollowerStatus {
  host_id: string;
  revision: number;
  seq: number;
  age_seconds: number | null;
  connected: boolean;
  live: boolean;
}

interface Watch {
  iter: AsyncIterable<KvWatchEntry> & { stop(): void };
  /** Entries the key range held when the watch started (the initial read). */
  initial: number;
}

export class Follower {
  private conn: FleetConnection | null = null;
  private closed = false;
  private live = false;
  private currentAt: number;
  private revision: number;
  private seq: number;
  private lastStaleLog = 0;
  private lastError = '';
  private readonly timer: NodeJS.Timeout;
  private done: Promise<void> | null = null;
  private stopWatches: (() => void) | null = null;

  constructor(
    private readonly config: GatewayConfig,
    private readonly snapshot: LocalSnapshot,
    /** Has the store re-read its change log (raises the change events the doors act on). */
    private readonly changed: () => void,
    private readonly log: Logger,
  ) {
    const s = snapshot.state();
    this.currentAt = s.currentAt;
    this.revision = s.revision;
    this.seq = s.seq;
    g.revision.set(s.revision);
    g.seq.set(s.seq);
    this.timer = setInterval(() => this.tick(), TOUCH_EVERY_MS);
    this.timer.unref();
    if (s.currentAt > 0) {
      log.info({ event: 'fleet_snapshot_loaded', revision: s.revision, seq: s.seq, age_seconds: this.age() }, `enforcing the local policy snapshot (revision ${s.revision}, ${Math.round(this.age() ?? 0)} s old) until NATS answers`);
    } else {
      log.warn({ event: 'fleet_snapshot_empty' }, 'no local policy snapshot yet: every devbox is unknown_client until the first sync');
    }
  }

  start(): void {
    this.done = this.run();
  }

  status(): FollowerStatus {
    return { host_id: this.config.hostId!, revision: this.revision, seq: this.seq, age_seconds: this.age(), connected: this.conn?.connected() ?? false, live: this.live };
  }

  /** Ever synced: the snapshot holds something to enforce. */
  hasSnapshot(): boolean {
    return this.currentAt > 0;
  }

  private age(): number | null {
    return this.currentAt > 0 ? Math.max(0, (Date.now() - this.currentAt) / 1000) : null;
  }

  private tick(): void {
    const now = Date.now();
    if (this.live && this.conn?.connected()) {
      this.currentAt = now;
      if (now % 10_000 < TOUCH_EVERY_MS) this.snapshot.touch(now);
    }
    const age = this.age();
    g.age.set(age ?? -1);
    g.connected.set(this.live && this.conn?.connected() ? 1 : 0);
    if (age !== null && age * 1000 > STALE_AFTER_MS && now - this.lastStaleLog > 60_000) {
      this.lastStaleLog = now;
      this.log.warn({ event: 'fleet_snapshot_behind', age_seconds: Math.round(age), revision: this.revision }, `the policy snapshot is ${Math.round(age)} s behind: NATS is unreachable; enforcing the last good snapshot`);
    }
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      try {
        this.conn ??= await openConnection(this.config, this.config.follow!, 'follower', this.log);
        if (this.closed) {
          await this.conn.close();
          break;
        }
        await this.conn.ready();
        const kv = await new Kvm(this.conn.nc).open(this.config.natsBucket);
        await this.follow(kv);
      } catch (e) {
        if (this.closed) break;
        const why = (e as Error).message;
        if (why !== this.lastError) this.log.warn({ event: 'fleet_follow_failed', err: why }, `following NATS failed: ${why}; retrying`);
        this.lastError = why;
      }
      this.live = false;
      if (!this.closed) await new Promise((r) => setTimeout(r, RETRY_MS));
    }
  }

  /** One connection's life: resync, then apply updates until the connection drops. */
  private async follow(kv: KV): Promise<void> {
    const filters = [POLICY_FILTER, hostFilter(this.config.hostId!)];
    const watches: Watch[] = [];
    this.stopWatches = () => {
      for (const w of watches) w.iter.stop();
    };
    const started = Date.now();
    try {
      for (const f of filters) watches.push(await this.watch(kv, f));
      await this.consume(watches, started);
    } finally {
      this.stopWatches();
      this.stopWatches = null;
      this.live = false;
    }
  }

  private async watch(kv: KV, filter: string): Promise<Watch> {
    const jsm = await jetstreamManager(this.conn!.nc);
    // How many keys the range holds now: the initial read is done after that many entries (or
    // at the first with nothing pending behind it).
    const info = await jsm.streams.info(`KV_${this.config.natsBucket}`, { subjects_filter: `$KV.${this.config.natsBucket}.${filter}` });
    const initial = Object.keys(info.state.subjects ?? {}).length;
    const iter = await kv.watch({ key: filter });
    return { iter: iter as unknown as Watch['iter'], initial };
  }

  private async consume(watches: Watch[], started: number): Promise<void> {
    const initial: Revised[] = [];
    let queue: Revised[] = [];
    let pendingInitial = watches.filter((w) => w.initial > 0).length;
    let synced = false;
    let flushing = false;
    let fail: (e: Error) => void = () => {};
    const ended = new Promise<void>((_, reject) => (fail = reject));
    ended.catch(() => {});

    const flush = () => {
      if (flushing || !synced || queue.length === 0) return;
      flushing = true;
      setImmediate(() => {
        flushing = false;
        const batch = queue;
        queue = [];
        try {
          this.applyBatch(batch);
        } catch (e) {
          fail(e as Error);
        }
        if (queue.length > 0) flush();
      });
    };
    const finishInitial = () => {
      if (synced || pendingInitial > 0) return;
      synced = true;
      this.resync(initial, started);
      flush();
    };

    const readers = watches.map(async (w) => {
      let seen = 0;
      let done = w.initial === 0;
      for await (const e of w.iter) {
        const entry = e.operation === 'PUT' ? decodeEntry(e.value) : null;
        if (entry !== null) (synced ? queue : done ? queue : initial).push({ revision: e.revision, entry });
        g.lag.set(e.delta ?? 0);
        if (!done && (++seen >= w.initial || e.delta === 0)) {
          done = true;
          pendingInitial--;
          finishInitial();
        }
        flush();
      }
    });
    finishInitial();
    const timeout = setTimeout(() => {
      if (!synced) fail(new Error(`the initial read of the bucket did not finish within ${RESYNC_TIMEOUT_MS / 1000} s`));
    }, RESYNC_TIMEOUT_MS);
    const watchEnded = readers.map((r) =>
      r.then(() => {
        throw new Error('the bucket watch ended');
      }),
    );
    // Settled after the race too (the watches stop when it is over): never an unhandled rejection.
    for (const p of watchEnded) p.catch(() => {});
    try {
      await Promise.race([this.conn!.disconnected(), ended, ...watchEnded]);
    } finally {
      clearTimeout(timeout);
      this.log.debug({ event: 'fleet_follow_ended', ms: Date.now() - started }, 'following ended');
    }
  }

  /** `started`: when this connection's watches began (the log shows the read and the swap). */
  private resync(entries: Revised[], started: number): void {
    const t0 = Date.now();
    const revision = entries.reduce((m, e) => Math.max(m, e.revision), this.revision);
    const changed = this.snapshot.replace(
      entries.map((e) => e.entry),
      revision,
    );
    this.note(revision, this.snapshot.state().seq);
    this.live = true;
    this.lastError = '';
    this.currentAt = Date.now();
    g.resyncs.inc();
    if (changed > 0) this.changed();
    const policies = entries.filter((e) => e.entry.kind === 'policy').length;
    this.log.info(
      { event: 'fleet_resync', revision, seq: this.seq, policies, devboxes: entries.length - policies, changed, read_ms: t0 - started, swap_ms: Date.now() - t0, ms: Date.now() - started },
      `policy snapshot resynced: ${policies} policies, ${entries.length - policies} devboxes of host ${this.config.hostId}, ${changed} changed (revision ${revision})`,
    );
  }

  private applyBatch(batch: Revised[]): void {
    const changed = this.snapshot.apply(batch);
    const s = this.snapshot.state();
    this.note(s.revision, s.seq);
    this.currentAt = Date.now();
    g.applied.inc(batch.length);
    if (changed > 0) this.changed();
  }

  private note(revision: number, seq: number): void {
    this.revision = revision;
    this.seq = seq;
    g.revision.set(revision);
    g.seq.set(seq);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    this.stopWatches?.();
    await this.conn?.close();
    // A first connection still being attempted (NATS down since start) is not waited for.
    await Promise.race([this.done?.catch(() => {}), new Promise((r) => setTimeout(r, 1000).unref())]);
  }
}
