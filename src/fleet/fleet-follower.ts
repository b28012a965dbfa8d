/**
 * The sidecar's follower (`serve --follow nats://… --host-id NAME`): keeps the local snapshot
 * (local-snapshot.ts) equal to the fleet bucket's `policy.<host>.>`, `devbox.<host>.>` and
 * `agent.<host>.>` (the agent tokens, configs and sealed secrets its devboxes use).
 *
 * On every (re)connection it relists, but only from a complete snapshot: the publisher's
 * `meta.snapshot` marker must say the bucket's epoch was republished whole (before and after
 * the read), its epoch must not be older than the snapshot's, and within one epoch the
 * bucket's watermark must not be behind the snapshot's seq. Otherwise the sidecar keeps what
 * it has and tries again (a half-filled bucket after NATS lost its store never replaces it).
 * Both key ranges are read whole (the last value of each key), built in memory and swapped into
 * the snapshot in one transaction, so the doors see the old state or the new one, never a mix.
 * After the swap, entries are applied as NATS delivers them, in order, each only when newer by
 * (epoch, seq) than the entry held for its key. A marker completing a newer epoch relists.
 *
 * Freshness: the age is now − the `at` of the newest control-plane heartbeat applied
 * (`meta.heartbeat`, written by every live publisher), so it grows whenever the database,
 * every publisher, NATS or this sidecar's link is away. Past --max-staleness the sidecar is
 * not ready (and, with --stale fail-closed, refuses new connections). While NATS is down the
 * doors keep enforcing the last good snapshot; nothing is ever dropped to allow, and a devbox
 * the snapshot does not hold is unknown_client.
 */
import { Kvm, type KV, type KvWatchEntry } from '@nats-io/kv';
import { jetstreamManager } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import type { GatewayConfig } from '../config.js';
import { localNameOf, HEARTBEAT_KEY, hostAgentFilter, hostPolicyFilter, SNAPSHOT_KEY, WATERMARK_KEY, type Heartbeat, type Position, type SnapshotMarker, decodeEntry, decodeHeartbeat, decodeMarker, decodePosition, hostFilter } from './keys.js';
import type { LocalSnapshot, Revised, WatchSource } from './local-snapshot.js';
import { type FleetConnection, openConnection } from './nats.js';
import { followerGauges as g, setAgeSource } from './metrics.js';
import type { Verdict, Verifier } from './signing.js';

const RETRY_MS = 500;
const RETRY_MAX_MS = 10_000;
/** A snapshot older than this (not live on NATS) is logged as behind, then once a minute. */
const STALE_AFTER_MS = 30_000;
const TICK_MS = 250;
/** A resync whose initial read stalls this long is abandoned and started again. */
const RESYNC_TIMEOUT_MS = 30_000;
/** How often each watch's consumer is checked to still exist. */
const CONSUMER_PROBE_MS = 5000;

export interface FollowerStatus {
  host_id: string;
  revision: number;
  seq: number;
  epoch: number;
  age_seconds: number;
  max_staleness_seconds: number;
  connected: boolean;
  live: boolean;
  stale: boolean;
}

interface Watch {
  iter: AsyncIterable<KvWatchEntry> & { stop(): void };
  /** Entries the key range held when the watch started (the initial read; 0 when resumed). */
  initial: number;
  /** The entry range it watches; null: `meta.>` (markers and heartbeats, not snapshot entries). */
  source: WatchSource | null;
  /** Asks JetStream for the watch's consumer (rejects with "consumer not found" once deleted). */
  probe: () => Promise<unknown>;
}

/** The consumer the client keeps on a KV watch's iterator (not in its types): its info call. */
type WatchConsumer = { info?: (cached: boolean) => Promise<{ num_pending?: number }> } | undefined;
const consumerOf = (iter: unknown): WatchConsumer => (iter as { _data?: WatchConsumer })._data;

/** Why a relist was not done now (not an error of the connection: the sidecar waits and retries). */
class NotComplete extends Error {}

export class Follower {
  private conn: FleetConnection | null = null;
  private closed = false;
  private live = false;
  private currentAt: number;
  private revision: number;
  private seq: number;
  private epoch: number;
  private readonly startedAt = Date.now();
  private readonly refusalLogged = new Map<string, number>();
  private persistedAt = 0;
  /** The next connection relists (a newer epoch was completed, or resuming is not possible). */
  private relistNext = false;
  private lastStaleLog = 0;
  private lastError = '';
  private failures = 0;
  private readonly timer: NodeJS.Timeout;
  private done: Promise<void> | null = null;
  private stopWatches: (() => void) | null = null;

  constructor(
    private readonly config: GatewayConfig,
    private readonly snapshot: LocalSnapshot,
    /** Has the store re-read its change log (raises the change events the doors act on). */
    private readonly changed: () => void,
    private readonly log: Logger,
    /** --fleet-verify-keys: only values signed by these apply (null: unsigned values accepted). */
    private readonly verifier: Verifier | null = null,
  ) {
    const s = snapshot.state();
    this.currentAt = s.currentAt;
    this.revision = s.revision;
    this.seq = s.seq;
    this.epoch = s.epoch;
    g.revision.set(s.revision);
    g.seq.set(s.seq);
    g.epoch.set(s.epoch);
    setAgeSource(() => this.age());
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
    if (snapshot.synced()) {
      log.info({ event: 'fleet_snapshot_loaded', revision: s.revision, seq: s.seq, epoch: s.epoch, age_seconds: Math.round(this.age()) }, `enforcing the local policy snapshot (revision ${s.revision}, ${Math.round(this.age())} s old) until NATS answers`);
    } else {
      log.warn({ event: 'fleet_snapshot_empty' }, 'no local policy snapshot yet: every devbox is unknown_client until the first sync');
    }
  }

  start(): void {
    this.done = this.run();
  }

  status(): FollowerStatus {
    const age = this.age();
    return {
      host_id: this.config.hostId!,
      revision: this.revision,
      seq: this.seq,
      epoch: this.epoch,
      age_seconds: Math.round(age * 10) / 10,
      max_staleness_seconds: this.config.maxStaleness,
      connected: this.conn?.connected() ?? false,
      live: this.live,
      stale: age > this.config.maxStaleness,
    };
  }

  /** Ever synced: the snapshot holds something to enforce. */
  hasSnapshot(): boolean {
    return this.snapshot.synced();
  }

  /** Past --max-staleness (the doors refuse new connections with --stale fail-closed). */
  stale(): boolean {
    return this.age() > this.config.maxStaleness;
  }

  /**
   * Seconds since the newest heartbeat applied; never negative. Before the first heartbeat:
   * since this process started (unknown freshness counts as old, not as current).
   */
  private age(): number {
    const since = this.currentAt > 0 ? this.currentAt : this.startedAt;
    return Math.max(0, (Date.now() - since) / 1000);
  }

  private tick(): void {
    const now = Date.now();
    const age = this.age();
    g.age.set(age);
    g.connected.set(this.live && this.conn?.connected() ? 1 : 0);
    if (age * 1000 > STALE_AFTER_MS && now - this.lastStaleLog > 60_000) {
      this.lastStaleLog = now;
      this.log.warn(
        { event: 'fleet_snapshot_behind', age_seconds: Math.round(age), revision: this.revision, connected: this.conn?.connected() ?? false },
        `the policy snapshot is ${Math.round(age)} s behind the control plane (no heartbeat since): ${this.conn?.connected() ? 'the control plane is not publishing' : 'NATS is unreachable'}; ${this.config.stale === 'fail-closed' && age > this.config.maxStaleness ? 'refusing new connections' : 'enforcing the last good snapshot'}`,
      );
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
        this.failures = 0;
      } catch (e) {
        if (this.closed) break;
        const why = (e as Error).message;
        if (why !== this.lastError) {
          if (e instanceof NotComplete) this.log.warn({ event: 'fleet_resync_deferred', reason: why }, `not relisting now: ${why}; keeping the local snapshot`);
          else this.log.warn({ event: 'fleet_follow_failed', err: why }, `following NATS failed: ${why}; retrying`);
        }
        this.lastError = why;
        this.failures++;
      }
      this.live = false;
      if (!this.closed) await new Promise((r) => setTimeout(r, this.backoff()));
    }
  }

  /** Exponential with full jitter: a thousand sidecars coming back do not relist in step. */
  private backoff(): number {
    const cap = Math.min(RETRY_MAX_MS, RETRY_MS * 2 ** Math.min(this.failures, 10));
    return RETRY_MS / 2 + Math.random() * (cap - RETRY_MS / 2);
  }

  /** True when the value may be applied; else counted and logged (at most every 10 s per key). */
  private trusted(key: string, data: Uint8Array): boolean {
    if (this.verifier === null) return true;
    const verdict: Verdict = this.verifier.check(key, data);
    if (verdict === 'ok') return true;
    g.refused.inc({ reason: verdict });
    const now = Date.now();
    if (now - (this.refusalLogged.get(key) ?? 0) > 10_000) {
      if (this.refusalLogged.size > 10_000) this.refusalLogged.clear();
      this.refusalLogged.set(key, now);
      this.log.error(
        { event: 'fleet_entry_refused', key, reason: verdict },
        `refused the bucket's ${key}: ${verdict === 'unsigned' ? 'not signed' : verdict === 'unknown_key' ? 'signed by a key not in --fleet-verify-keys' : 'its signature does not verify'}; keeping what the snapshot holds`,
      );
    }
    return false;
  }

  /**
   * The complete-snapshot marker and the watermark (as the `meta.>` watch delivered them),
   * checked against what the snapshot holds; throws NotComplete when a relist must wait.
   * Read through the watch, not KV gets: a sidecar's NATS user needs no stream-wide read.
   */
  private completeMarker(marker: SnapshotMarker | null, mark: Position | null): SnapshotMarker {
    if (marker === null) throw new NotComplete('the bucket holds no complete snapshot yet (new, or NATS lost its store and the control plane is refilling it)');
    if (!marker.complete) throw new NotComplete(`fleet epoch ${marker.epoch} is being republished`);
    if (marker.epoch < this.epoch) {
      g.refused.inc({ reason: 'older_epoch' });
      throw new NotComplete(`the bucket's epoch ${marker.epoch} is older than the snapshot's ${this.epoch}`);
    }
    if (marker.epoch === this.epoch && mark !== null && mark.epoch === this.epoch && mark.seq < this.seq) {
      g.refused.inc({ reason: 'lower_seq' });
      throw new NotComplete(`the bucket's watermark seq ${mark.seq} is below the snapshot's ${this.seq} in the same epoch`);
    }
    return marker;
  }

  /**
   * One connection's life. Resume when the snapshot was last relisted from this same bucket
   * (its stream's creation time): each entry watch starts at its stored revision + 1, so what
   * changed while away arrives as updates (the bucket keeps the last value of every key and
   * never deletes one: nothing between is lost). Else relist from a complete snapshot. Then
   * apply updates until the connection drops.
   */
  private async follow(kv: KV): Promise<void> {
    const jsm = await jetstreamManager(this.conn!.nc);
    const bucket = (await jsm.streams.info(`KV_${this.config.natsBucket}`)).created;
    const s = this.snapshot.state();
    const resume = !this.relistNext && s.bucket !== '' && s.bucket === bucket && s.epoch > 0;
    const sources: Array<[WatchSource, string]> = [
      ['policy', hostPolicyFilter(this.config.hostId!)],
      ['host', hostFilter(this.config.hostId!)],
      ['agent', hostAgentFilter(this.config.hostId!)],
    ];
    const watches: Watch[] = [];
    this.stopWatches = () => {
      for (const w of watches) w.iter.stop();
    };
    const started = Date.now();
    try {
      for (const [source, f] of sources) watches.push(await this.watch(kv, f, source, resume ? s.revs[source] + 1 : 0));
      watches.push(await this.watch(kv, 'meta.>', null, 0));
      if (resume) {
        this.live = true;
        this.lastError = '';
        g.resumes.inc();
        this.log.info({ event: 'fleet_resumed', from: s.revs, epoch: s.epoch }, `resumed following from revisions policy ${s.revs.policy}, host ${s.revs.host}, agent ${s.revs.agent} (no relist)`);
      }
      await this.consume(watches, started, resume ? null : bucket);
    } finally {
      this.stopWatches();
      this.stopWatches = null;
      this.live = false;
    }
  }

  private async watch(kv: KV, filter: string, source: WatchSource | null, from: number): Promise<Watch> {
    if (from > 0) {
      const iter = await kv.watch({ key: filter, resumeFromRevision: from });
      // The backlog since `from`: the watch's consumer counted it when created (the client
      // keeps that info on the iterator; without it the backlog applies as it arrives).
      const consumer = consumerOf(iter);
      const backlog = (await consumer?.info?.(true).catch(() => null))?.num_pending ?? 0;
      return { iter: iter as unknown as Watch['iter'], initial: backlog, source, probe: () => consumer?.info?.(false) ?? Promise.resolve() };
    }
    const jsm = await jetstreamManager(this.conn!.nc);
    // How many keys the range holds now: the initial read is done after that many entries (or
    // at the first with nothing pending behind it).
    const info = await jsm.streams.info(`KV_${this.config.natsBucket}`, { subjects_filter: `$KV.${this.config.natsBucket}.${filter}` });
    const initial = Object.keys(info.state.subjects ?? {}).length;
    const iter = await kv.watch({ key: filter });
    const consumer = consumerOf(iter);
    return { iter: iter as unknown as Watch['iter'], initial, source, probe: () => consumer?.info?.(false) ?? Promise.resolve() };
  }

  /** `relistFrom`: the bucket a relist reads (null: resumed, everything is an update). */
  private async consume(watches: Watch[], started: number, relistFrom: string | null): Promise<void> {
    const initial: Revised[] = [];
    /** Names whose bucket value was refused during the initial read: the relist keeps them. */
    const refused = new Set<string>();
    let initialHeartbeat: Heartbeat | null = null;
    let queue: Revised[] = [];
    let pendingInitial = watches.filter((w) => w.initial > 0).length;
    /** The initial read (resumed: the backlog since the stored revisions) is done (later entries queue). */
    let synced = false;
    /** The relist or backlog is in the snapshot (queued entries apply). */
    let installed = false;
    /** Per entry range, the newest revision the initial read delivered (its resume point). */
    const seenRev: Record<WatchSource, number> = { policy: 0, host: 0, agent: 0 };
    let flushing = false;
    let fail: (e: Error) => void = () => {};
    const ended = new Promise<void>((_, reject) => (fail = reject));
    ended.catch(() => {});

    const flush = () => {
      if (flushing || !installed || queue.length === 0) return;
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
    /** The marker and watermark as the meta watch delivered them (first: at the start of the read). */
    let firstMarker: string | null = null;
    let marker: SnapshotMarker | null = null;
    let mark: Position | null = null;
    const finishInitial = () => {
      if (synced || pendingInitial > 0) return;
      synced = true;
      try {
        if (relistFrom === null) {
          // Resumed while a newer epoch was completed (a restore while away): relist from it instead.
          if (marker?.complete && marker.epoch > this.epoch) {
            this.relistNext = true;
            throw new Error(`fleet epoch ${marker.epoch} is complete; relisting`);
          }
          // Resumed: the backlog in one transaction, like a relist's swap (never half of it).
          if (initial.length > 0) this.applyBatch(initial);
        } else {
          if (marker !== null && JSON.stringify(marker) !== firstMarker) throw new NotComplete(`the snapshot marker changed during the read (epoch ${marker.epoch})`);
          const complete = this.completeMarker(marker, mark);
          this.resync(initial, complete, started, refused, { bucket: relistFrom, revs: seenRev });
        }
      } catch (e) {
        fail(e as Error);
        return;
      }
      installed = true;
      if (initialHeartbeat) this.heartbeat(initialHeartbeat);
      flush();
    };
    const onMeta = (e: KvWatchEntry) => {
      if (e.operation !== 'PUT' || !this.trusted(e.key, e.value)) return;
      if (e.key === HEARTBEAT_KEY) {
        const hb = decodeHeartbeat(e.value);
        if (hb === null) return;
        if (installed) this.heartbeat(hb);
        else initialHeartbeat = hb;
      } else if (e.key === WATERMARK_KEY) {
        mark = decodePosition(e.value);
      } else if (e.key === SNAPSHOT_KEY && !installed) {
        marker = decodeMarker(e.value);
        firstMarker ??= JSON.stringify(marker);
      } else if (e.key === SNAPSHOT_KEY) {
        const m = decodeMarker(e.value);
        // A newer epoch republished whole: relist from it (its entries arrived one by one meanwhile).
        if (m?.complete && m.epoch > this.epoch) {
          this.relistNext = true;
          fail(new Error(`fleet epoch ${m.epoch} is complete; relisting`));
        }
      }
    };

    const readers = watches.map(async (w) => {
      let seen = 0;
      let done = w.initial === 0;
      for await (const e of w.iter) {
        if (w.source === null) onMeta(e);
        else {
          if (!synced && !done) seenRev[w.source] = Math.max(seenRev[w.source], e.revision);
          let entry = e.operation === 'PUT' ? decodeEntry(e.value) : null;
          // Not one of ours (unsigned by a trusted key, or not an entry at all: something else
          // answered into the key): refused, and a relist keeps what the snapshot holds for it.
          if (e.operation === 'PUT' && (!this.trusted(e.key, e.value) || entry === null)) {
            if (entry === null && this.verifier === null) g.refused.inc({ reason: 'not_an_entry' });
            entry = null;
            const name = localNameOf(e.key);
            if (name !== null && !synced) refused.add(name);
          }
          if (entry !== null) (synced ? queue : done ? queue : initial).push({ revision: e.revision, entry, source: w.source });
          g.lag.set(e.delta ?? 0);
        }
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
    // A consumer deleted under a watch delivers nothing more, silently, while the meta watch
    // keeps the age fresh: each one is asked for now and then, and a lost one ends this
    // connection's life (the next resumes from the stored revisions).
    const probing = setInterval(() => {
      for (const w of watches) {
        w.probe().catch((e: Error) => {
          if (/consumer not found/i.test(e.message)) fail(new Error(`the watch consumer of ${w.source ?? 'meta'} was deleted`));
        });
      }
    }, CONSUMER_PROBE_MS);
    probing.unref();
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
      clearInterval(probing);
      this.log.debug({ event: 'fleet_follow_ended', ms: Date.now() - started }, 'following ended');
    }
  }

  private heartbeat(hb: Heartbeat): void {
    // A heartbeat of an older epoch is a replica that has not noticed the new one yet.
    if (hb.epoch < this.epoch || hb.at <= this.currentAt) return;
    this.currentAt = hb.at;
    // Kept for a restart every 5 s, not at every heartbeat (a restart then reads it as older, never newer).
    if (hb.at - this.persistedAt >= 5000) {
      this.persistedAt = hb.at;
      this.snapshot.heartbeat(hb.at);
    }
    g.age.set(this.age());
  }

  /** `started`: when this connection's watches began (the log shows the read and the swap). */
  private resync(entries: Revised[], marker: SnapshotMarker, started: number, refused: ReadonlySet<string>, at: { bucket: string; revs: Record<WatchSource, number> }): void {
    const t0 = Date.now();
    const revision = entries.reduce((m, e) => Math.max(m, e.revision), 0);
    const changed = this.snapshot.replace(
      entries.map((e) => e.entry),
      revision,
      marker.epoch,
      marker.seq,
      refused,
      at,
    );
    this.relistNext = false;
    const s = this.snapshot.state();
    this.note(s.revision, s.seq, s.epoch);
    this.live = true;
    this.lastError = '';
    g.resyncs.inc();
    if (changed > 0) this.changed();
    const policies = entries.filter((e) => e.entry.kind === 'policy').length;
    const devboxes = entries.filter((e) => e.entry.kind === 'devbox').length;
    const agents = entries.length - policies - devboxes;
    this.log.info(
      { event: 'fleet_resync', revision, seq: this.seq, epoch: this.epoch, policies, devboxes, agent_entries: agents, changed, read_ms: t0 - started, swap_ms: Date.now() - t0, ms: Date.now() - started },
      `policy snapshot resynced: ${policies} policies, ${devboxes} devboxes, ${agents} agent tokens, configs and sealed secrets of host ${this.config.hostId}, ${changed} changed (revision ${revision}, epoch ${this.epoch})`,
    );
  }

  private applyBatch(batch: Revised[]): void {
    const { changed, refused } = this.snapshot.apply(batch);
    const s = this.snapshot.state();
    this.note(s.revision, s.seq, s.epoch);
    g.applied.inc(batch.length - refused);
    if (refused > 0) g.refused.inc({ reason: 'not_newer' }, refused);
    if (changed > 0) this.changed();
  }

  private note(revision: number, seq: number, epoch: number): void {
    this.revision = revision;
    this.seq = seq;
    this.epoch = epoch;
    g.revision.set(revision);
    g.seq.set(seq);
    g.epoch.set(epoch);
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
