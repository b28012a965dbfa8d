/**
 * The control plane's publisher: reads committed changes from the outbox (ChangeFeed) in seq
 * order and writes them into the fleet's KV bucket (keys.ts). Every replica runs one; they
 * publish the same records concurrently, so each key is written by compare-and-set on its KV
 * revision and only when the entry there is older by (epoch, seq): no key ever goes back.
 *
 * `meta.watermark` holds the highest seq published contiguously in the current epoch (also
 * compare-and-set, only ever raised). A replica starts from it and skips ahead to it, so a
 * change whose replica died between commit and publish is published by any live or restarted
 * one. A reader behind the outbox's retained window republishes a full snapshot (and
 * tombstones keys the database no longer has). NATS down: writes still commit (the outbox
 * keeps them); this loop retries and catches up when NATS returns.
 *
 * A new epoch (keys.ts) is started, and the whole database republished under it, when the
 * bucket has no complete-snapshot marker (new, or NATS lost its store: the bucket is recreated)
 * and when the database is behind the bucket's watermark (a restore, or a failover that lost
 * commits: without a new epoch every change below the old watermark would be skipped).
 *
 * One entry that cannot be carried (over NATS's max_payload) never blocks the others: it is
 * replaced by a `withheld` tombstone (fail closed on the sidecars), a dead letter is written
 * under `dead.<key>`, counted and logged, and publishing goes on.
 *
 * Every live publisher writes `meta.heartbeat` {epoch, seq, at} every HEARTBEAT_MS after a
 * drain that reached the database and NATS; the sidecars' snapshot age is measured from it.
 */
import { createHash } from 'node:crypto';
import type { KV } from '@nats-io/kv';
import { KvWatchInclude, Kvm } from '@nats-io/kv';
import { jetstreamManager } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { type ChangeFeed, type PlaneRecord, isPlaneRecord } from '../store/change-feed.js';
import type { GatewayConfig } from '../config.js';
import { type FleetEntry, HEARTBEAT_KEY, type Position, SNAPSHOT_KEY, type SnapshotMarker, WATERMARK_KEY, comparePosition, deadLetterKey, decodeMarker, decodePosition, encodeJson, entryOf, devboxKeyOf, hostOf, LAYOUT, policyKey, tombstoneFor, withheld } from './keys.js';
import { HostScope, type ScopeChanges } from './host-scope.js';
import { type AgentChanges, AgentScope, type AgentValue } from './agent-scope.js';
import { type FleetConnection, openConnection } from './nats.js';
import type { Signer, Verifier } from './signing.js';
import { fleetDeadLetters, fleetEpoch, fleetForgeries, fleetPublished, fleetPublishedSeq, fleetSnapshots } from './metrics.js';

const BATCH = 256;
/** A safety net: changes are announced (nudge), but another replica's commit may not be. */
const POLL_MS = 250;
const RETRY_MS = 500;
export const HEARTBEAT_MS = 500;
/** A replica whose last good round (database read, NATS write) is older than this is not ready. */
const UNREADY_AFTER_MS = 3000;
/** Room left under max_payload for the KV message's headers. */
const HEADER_ROOM = 1024;
/** An incomplete snapshot claim not refreshed for this long is taken over (its replica died). */
const CLAIM_MS = 15_000;

/** Test-only fault hook (docs/testing.md): die by SIGKILL between commit and publish. */
const FAULT = process.env.EGRESS_FLEET_FAULT === 'kill-before-publish';

export class Publisher {
  private conn: FleetConnection | null = null;
  private kv: KV | null = null;
  /** The bucket's stream creation time: another value means it was recreated under us. */
  private bucketId: string | null = null;
  private epoch = 0;
  private cursor = 0;
  private closed = false;
  private wake: (() => void) | null = null;
  private pending = false;
  private faultFrom = Number.POSITIVE_INFINITY;
  private done: Promise<void> | null = null;
  private lastGood = Date.now();
  private lastHeartbeat = 0;
  private lastError = '';
  /** The watermark whose tip was last checked against the database (once per watermark). */
  private verified = '';
  /** A forged entry was seen: the next round republishes. */
  private repair = false;
  private stopForgeryWatch: (() => void) | null = null;
  /** Which host references which policy (per-host scope), as of the cursor. */
  private scope: HostScope | null = null;
  /** Which host holds which agent token, config and secret, as of the cursor (null with `scope`). */
  private agents: AgentScope | null = null;

  constructor(
    private readonly config: GatewayConfig,
    private readonly feed: ChangeFeed,
    private readonly log: Logger,
    /** Signs every value written (null: unsigned). */
    private readonly signer: Signer | null = null,
    /** With a signer: the keys whose values count as genuine (its own and --fleet-verify-keys). */
    private readonly trust: Verifier | null = null,
  ) {}

  private encode(key: string, value: object): Uint8Array {
    return this.signer ? this.signer.encode(key, value) : encodeJson(value);
  }

  /** Written by a trusted publisher (always, when unsigned): anything else in the bucket is overwritten. */
  private genuine(key: string, data: Uint8Array): boolean {
    return this.trust === null ? decodePosition(data) !== null : this.trust.check(key, data) === 'ok';
  }

  /**
   * Watches the bucket for values no trusted publisher wrote (anyone able to publish into a
   * key, e.g. a JetStream API answer sent to a `$KV.…` reply subject): a forged entry makes
   * the next round republish the database in the current epoch, which overwrites it.
   */
  private async watchForgeries(kv: KV): Promise<void> {
    const iter = await kv.watch({ key: '>', include: KvWatchInclude.UpdatesOnly });
    this.stopForgeryWatch = () => iter.stop();
    for await (const e of iter) {
      if (e.operation !== 'PUT' || !ENTRY_PREFIXES.some((p) => e.key.startsWith(`${p}.`)) || this.genuine(e.key, e.value)) continue;
      fleetForgeries.inc();
      this.log.error({ event: 'fleet_forged_entry_detected', key: e.key, revision: e.revision }, `the bucket's ${e.key} was written by no trusted publisher; republishing the database over it`);
      this.repair = true;
      this.nudge();
    }
  }

  start(): void {
    this.done = this.run();
  }

  /** A change committed: publish now rather than at the next poll. */
  nudge(): void {
    this.pending = true;
    this.wake?.();
  }

  /** Why this replica should not be ready (it cannot publish), or null. */
  unready(): string | null {
    const ms = Date.now() - this.lastGood;
    if (ms <= UNREADY_AFTER_MS) return null;
    return `the fleet publisher has not published for ${Math.round(ms / 1000)} s${this.lastError ? `: ${this.lastError}` : ''}`;
  }

  private async run(): Promise<void> {
    if (FAULT) this.faultFrom = (await this.feed.lastSeq()) + 1;
    while (!this.closed) {
      try {
        // No heartbeat while a republish is under way: the bucket is not current yet.
        if ((await this.drain()) && Date.now() - this.lastHeartbeat >= HEARTBEAT_MS) await this.heartbeat();
        this.lastGood = Date.now();
        this.lastError = '';
      } catch (e) {
        if (this.closed) break;
        const why = (e as Error).message;
        if (why !== this.lastError) this.log.warn({ event: 'fleet_publish_failed', err: why }, `publishing to NATS failed: ${why}; retrying`);
        this.lastError = why;
        await this.checkBucket();
        await this.sleep(RETRY_MS);
        continue;
      }
      if (!this.pending) await this.sleep(Math.min(POLL_MS, HEARTBEAT_MS));
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
    if (this.kv === null) {
      const kv = await new Kvm(this.conn.nc).create(this.config.natsBucket, { history: 1 });
      const info = await (await jetstreamManager(this.conn.nc)).streams.info(`KV_${this.config.natsBucket}`);
      if (this.bucketId !== null && info.created !== this.bucketId) {
        this.log.warn({ event: 'fleet_bucket_recreated', bucket: this.config.natsBucket }, `the fleet bucket ${this.config.natsBucket} was created anew (NATS lost its store); republishing the database`);
      }
      this.bucketId = info.created;
      this.kv = kv;
      this.stopForgeryWatch?.();
      void this.watchForgeries(kv).catch((e: unknown) => this.log.warn({ event: 'fleet_forgery_watch_ended', err: (e as Error).message }, 'the forged-entry watch ended; it restarts with the next bucket'));
    }
    return this.kv;
  }

  /**
   * After a failure: is the bucket still there? NATS restarted without its store answers KV
   * reads with time-outs; its stream API says so plainly, and the bucket is created again.
   */
  private async checkBucket(): Promise<void> {
    if (this.conn === null || !this.conn.connected() || this.kv === null) return;
    try {
      const info = await (await jetstreamManager(this.conn.nc)).streams.info(`KV_${this.config.natsBucket}`);
      if (info.created === this.bucketId) return;
    } catch (e) {
      if (!/stream not found/i.test((e as Error).message)) return;
    }
    this.kv = null;
  }

  /** Publishes everything committed after the watermark, in seq order; false while another replica republishes. */
  private async drain(): Promise<boolean> {
    this.pending = false;
    const kv = await this.bucket();
    const marker = await this.marker(kv);
    if (marker !== null && !marker.complete && Date.now() - marker.at < CLAIM_MS) {
      // Another replica is republishing a new epoch (it refreshes the claim as it goes): wait for it.
      if (marker.epoch > this.epoch) {
        this.cursor = 0;
        this.scope = null;
        this.agents = null;
      }
      this.epoch = Math.max(this.epoch, marker.epoch);
      return false;
    }
    if (marker?.complete && marker.layout !== LAYOUT) {
      await this.newEpoch(kv, marker, `the bucket holds key layout ${marker.layout}; this build writes layout ${LAYOUT}`);
      return true;
    }
    if (marker === null || !marker.complete) {
      // A bucket with no complete snapshot: new, refilled after a loss, or a republish that
      // died half-way. Whoever gets here republishes (the puts are idempotent).
      await this.newEpoch(kv, marker, marker === null ? 'the bucket holds no complete snapshot' : 'the last republish did not finish');
      return true;
    }
    const mark = await this.watermark(kv);
    if (mark.epoch > this.epoch) {
      // Another replica started an epoch (the database may have been restored): the scope index is rebuilt from it.
      this.epoch = mark.epoch;
      this.cursor = 0;
      this.scope = null;
      this.agents = null;
    }
    fleetEpoch.set(this.epoch);
    const head = await this.feed.lastSeq();
    if (mark.epoch === this.epoch && head < mark.seq) {
      await this.newEpoch(kv, marker, `the database's newest change is seq ${head}, the bucket's watermark seq ${mark.seq}: the database is behind (restored, or a failover lost commits)`);
      return true;
    }
    if (mark.epoch === this.epoch && mark.tip !== null && this.verified !== `${mark.epoch}:${mark.seq}`) {
      // Behind and then written past the watermark again: the change at the watermark's seq
      // is another one than the bucket saw.
      const tip = await this.tipAt(mark.seq);
      if (tip !== null && tip !== mark.tip) {
        await this.newEpoch(kv, marker, `the database's change seq ${mark.seq} differs from the one published as seq ${mark.seq}: the database lost commits (restored, or a failover) and was written again`);
        return true;
      }
      this.verified = `${mark.epoch}:${mark.seq}`;
    }
    if (mark.epoch === this.epoch && mark.seq > this.cursor) await this.catchUpScope(mark.seq);
    this.cursor = Math.max(this.cursor, mark.epoch === this.epoch ? mark.seq : 0);
    fleetPublishedSeq.set(this.cursor);
    if (this.repair) {
      this.repair = false;
      await this.republish(kv, this.epoch);
    }
    for (;;) {
      const records = await this.feed.changesSince(this.cursor, BATCH);
      if (records.length === 0) {
        if (head > this.cursor) await this.republish(kv, this.epoch);
        return true;
      }
      if (records[0]!.seq !== this.cursor + 1) {
        await this.republish(kv, this.epoch);
        continue;
      }
      // The fault hook dies before the rebuild too: the rebuild's snapshot would carry the change.
      if (this.scope === null && records.at(-1)!.seq >= this.faultFrom) process.kill(process.pid, 'SIGKILL');
      const scope = this.scope ?? (await this.rebuildScope(kv));
      const agents = this.agents!;
      for (const r of records) {
        if (r.seq >= this.faultFrom) process.kill(process.pid, 'SIGKILL');
        if (isPlaneRecord(r)) await this.publishRecord(kv, r, scope.apply(r), agents.apply(r));
        else await this.publishAgents(kv, r.seq, agents.apply(r), 'both');
        this.cursor = r.seq;
        fleetPublished.inc();
      }
      await this.raiseWatermark(kv, { epoch: this.epoch, seq: this.cursor });
      if (records.length < BATCH) return true;
    }
  }

  /**
   * Another replica published up to `to`: move the scope index past those records too (they are
   * skipped here), or, when the outbox no longer holds them, rebuild it at the next records.
   */
  private async catchUpScope(to: number): Promise<void> {
    if (this.scope === null || this.agents === null) return;
    let at = this.cursor;
    while (at < to) {
      const records = await this.feed.changesSince(at, BATCH);
      if (records.length === 0 || records[0]!.seq !== at + 1) {
        this.scope = null;
        this.agents = null;
        return;
      }
      for (const r of records) {
        if (r.seq > to) return;
        if (isPlaneRecord(r)) this.scope.apply(r);
        this.agents.apply(r);
        at = r.seq;
      }
    }
  }

  /**
   * One record: a policy newly referenced on a host (or changed) first, so a sidecar never
   * holds a devbox without its policy; then the devbox; then policies no devbox on a host
   * references any more. A devbox's agent keys are tombstoned before its entry is written and
   * written after it.
   */
  private async publishRecord(kv: KV, r: PlaneRecord, scope: ScopeChanges, agents: AgentChanges): Promise<void> {
    for (const { host, policy } of scope.put) {
      await this.put(kv, policyKey(host, policy.account_id, policy.id), entryOf({ seq: r.seq, kind: 'policy', id: policy.id, accountId: policy.account_id, value: policy }, this.epoch));
    }
    await this.publishAgents(kv, r.seq, agents, 'drop');
    if (r.kind === 'devbox') await this.put(kv, devboxKeyOf(r), entryOf(r, this.epoch));
    await this.publishAgents(kv, r.seq, agents, 'put');
    for (const d of scope.drop) {
      await this.put(kv, policyKey(d.host, d.accountId, d.policyId), entryOf({ seq: r.seq, kind: 'policy', id: d.policyId, accountId: d.accountId, value: null }, this.epoch));
    }
  }

  /** One record's agent keys: tombstones (tokens before what they named), then puts (secrets and configs before tokens). */
  private async publishAgents(kv: KV, seq: number, changes: AgentChanges, which: 'drop' | 'put' | 'both'): Promise<void> {
    if (which !== 'put') for (const d of changes.drop) await this.put(kv, d.key, agentEntry(d.value, seq, this.epoch));
    if (which !== 'drop') for (const p of changes.put) await this.put(kv, p.key, agentEntry(p.value, seq, this.epoch));
  }

  private async heartbeat(): Promise<void> {
    const kv = this.kv;
    if (kv === null) return;
    const at = Date.now();
    await kv.put(HEARTBEAT_KEY, this.encode(HEARTBEAT_KEY, { epoch: this.epoch, seq: this.cursor, at }));
    this.lastHeartbeat = at;
  }

  /** Writes the entry unless the key holds one as new or newer; an entry too large is withheld. */
  private async put(kv: KV, key: string, entry: FleetEntry): Promise<void> {
    let data = this.encode(key, entry);
    const max = (this.conn?.nc.info?.max_payload ?? 1024 * 1024) - HEADER_ROOM;
    if (data.length > max) {
      data = await this.deadLetter(kv, key, entry, data.length, `the entry is ${data.length} bytes; NATS carries at most ${max} (max_payload less headers)`);
    }
    for (;;) {
      const cur = await kv.get(key);
      try {
        if (cur === null) await kv.create(key, data);
        else {
          const at = cur.operation === 'PUT' ? decodePosition(cur.value) : null;
          if (at !== null && comparePosition(at, entry) >= 0) {
            if (this.genuine(key, cur.value)) return;
            this.log.error({ event: 'fleet_forged_entry_replaced', key, claimed_seq: at.seq, claimed_epoch: at.epoch }, `the bucket's ${key} is not signed by a trusted key (claims seq ${at.seq}): overwritten with the database's`);
          }
          await kv.update(key, data, cur.revision);
        }
        return;
      } catch (e) {
        if (isTooLarge(e) && data.length > 0 && entry.value !== null) {
          data = await this.deadLetter(kv, key, entry, data.length, (e as Error).message);
          continue;
        }
        if (!isRevisionConflict(e)) throw e;
        // Another replica wrote the key between the read and the write: read again.
      }
    }
  }

  /** Records why `key` cannot be published; returns the withheld tombstone to publish instead. */
  private async deadLetter(kv: KV, key: string, entry: FleetEntry, bytes: number, why: string): Promise<Uint8Array> {
    fleetDeadLetters.inc({ kind: entry.kind });
    this.log.error(
      { event: 'fleet_publish_dead_letter', key, kind: entry.kind, id: entry.id, account_id: entry.account_id, seq: entry.seq, bytes, err: why },
      `change seq ${entry.seq} (${entry.kind} ${entry.id}) cannot be published: ${why}; withheld (the ${entry.kind} is gone on the sidecars until a publishable change replaces it), dead letter at ${deadLetterKey(key)}; every other change goes on`,
    );
    await kv.put(deadLetterKey(key), this.encode(deadLetterKey(key), { epoch: entry.epoch, seq: entry.seq, kind: entry.kind, id: entry.id, account_id: entry.account_id, bytes, reason: why, at: Date.now() }));
    return this.encode(key, withheld(entry, why));
  }

  private async marker(kv: KV): Promise<(SnapshotMarker & { revision: number }) | null> {
    const cur = await kv.get(SNAPSHOT_KEY);
    if (cur === null || cur.operation !== 'PUT') return null;
    const m = this.genuine(SNAPSHOT_KEY, cur.value) ? decodeMarker(cur.value) : null;
    // A forged or unreadable marker is an incomplete claim nobody holds: the next round replaces it.
    return m === null ? { epoch: 0, seq: 0, complete: false, at: 0, layout: LAYOUT, revision: cur.revision } : { ...m, revision: cur.revision };
  }

  private async watermark(kv: KV): Promise<Position & { revision: number; tip: string | null }> {
    const cur = await kv.get(WATERMARK_KEY);
    if (cur === null || cur.operation !== 'PUT' || !this.genuine(WATERMARK_KEY, cur.value)) return { seq: 0, epoch: 0, revision: cur?.revision ?? 0, tip: null };
    const v = JSON.parse(Buffer.from(cur.value).toString('utf8')) as { tip?: unknown };
    return { ...(decodePosition(cur.value) ?? { seq: 0, epoch: 0 }), revision: cur.revision, tip: typeof v.tip === 'string' ? v.tip : null };
  }

  /** A digest of the change record at `seq` (null when the outbox no longer holds it). */
  private async tipAt(seq: number): Promise<string | null> {
    if (seq <= 0) return null;
    const [r] = await this.feed.changesSince(seq - 1, 1);
    if (r?.seq !== seq) return null;
    return createHash('sha256').update(JSON.stringify(r)).digest('hex').slice(0, 24);
  }

  /** Raises the watermark to `to` (a later epoch replaces it whatever its seq). */
  private async raiseWatermark(kv: KV, to: Position): Promise<void> {
    const data = this.encode(WATERMARK_KEY, { ...to, tip: await this.tipAt(to.seq), at: Date.now() });
    for (;;) {
      const cur = await this.watermark(kv);
      if (comparePosition(cur, to) >= 0) break;
      try {
        if (cur.revision === 0) await kv.create(WATERMARK_KEY, data);
        else await kv.update(WATERMARK_KEY, data, cur.revision);
        break;
      } catch (e) {
        if (!isRevisionConflict(e)) throw e;
      }
    }
    fleetPublishedSeq.set(to.seq);
  }

  /**
   * Claims a new epoch (compare-and-set on the marker: one replica wins, the others adopt it at
   * their next round), marks the snapshot incomplete, republishes the database under the new
   * epoch and marks it complete.
   */
  private async newEpoch(kv: KV, marker: (SnapshotMarker & { revision: number }) | null, why: string): Promise<void> {
    const epoch = Math.max(Date.now(), (marker?.epoch ?? 0) + 1, this.epoch + 1);
    const claim = this.encode(SNAPSHOT_KEY, { epoch, seq: 0, complete: false, at: Date.now(), layout: LAYOUT });
    try {
      if (marker === null) await kv.create(SNAPSHOT_KEY, claim);
      else await kv.update(SNAPSHOT_KEY, claim, marker.revision);
    } catch (e) {
      if (isRevisionConflict(e)) return; // another replica claimed it first: adopt at the next round
      throw e;
    }
    this.log.warn({ event: 'fleet_new_epoch', epoch, previous_epoch: marker?.epoch ?? null, reason: why }, `starting fleet epoch ${epoch}: ${why}; republishing the database`);
    this.epoch = epoch;
    this.cursor = 0;
    fleetEpoch.set(epoch);
    const seq = await this.republish(kv, epoch, true);
    const cur = await this.marker(kv);
    if (cur?.epoch !== epoch) return; // a newer epoch took over meanwhile
    await kv.update(SNAPSHOT_KEY, this.encode(SNAPSHOT_KEY, { epoch, seq, complete: true, at: Date.now(), layout: LAYOUT }), cur.revision);
    this.log.info({ event: 'fleet_snapshot_complete', epoch, seq }, `fleet epoch ${epoch} republished whole (as of seq ${seq})`);
  }

  /** Keeps this replica's claim on the epoch it republishes fresh; throws when another took over. */
  private async refreshClaim(kv: KV, epoch: number): Promise<void> {
    const cur = await this.marker(kv);
    if (cur?.epoch !== epoch || cur.complete) throw new Error(`fleet epoch ${epoch} was taken over by another replica`);
    await kv.update(SNAPSHOT_KEY, this.encode(SNAPSHOT_KEY, { epoch, seq: 0, complete: false, at: Date.now(), layout: LAYOUT }), cur.revision);
  }

  /**
   * Builds the scope index from a snapshot (at S, past the cursor) and makes the bucket's policy
   * keys match it: the records up to S that this replica will replay find their references
   * already counted and emit no puts or tombstones of their own, and another replica may have
   * published them from an index that had not yet seen them. Keys only; devboxes are published
   * by their records.
   */
  private async rebuildScope(kv: KV): Promise<HostScope> {
    const snap = await this.feed.snapshot();
    const scope = HostScope.from(snap);
    const agents = AgentScope.from(snap);
    const want = new Map<string, FleetEntry>();
    for (const { host, policy } of scope.wanted()) {
      want.set(policyKey(host, policy.account_id, policy.id), entryOf({ seq: snap.seq, kind: 'policy', id: policy.id, accountId: policy.account_id, value: policy }, this.epoch));
    }
    await pipelined([...want], ([key, entry]) => this.put(kv, key, entry));
    const agentWant = new Map(agents.wanted().map(({ key, value }) => [key, agentEntry(value, snap.seq, this.epoch)] as const));
    await this.putAgentEntries(kv, agentWant, async () => {});
    const stale: string[] = [];
    for await (const key of await kv.keys('policy.>')) if (!want.has(key)) stale.push(key);
    for await (const key of await kv.keys('agent.>')) if (!agentWant.has(key)) stale.push(key);
    await pipelined(stale, async (key) => {
      const tomb = tombstoneFor(key, snap.seq, this.epoch);
      if (tomb) await this.put(kv, key, tomb);
    });
    this.scope = scope;
    this.agents = agents;
    return scope;
  }

  /** Agent keys, PIPELINE at a time: secrets and configs first, then the tokens naming them. */
  private async putAgentEntries(kv: KV, entries: Map<string, FleetEntry>, after: () => Promise<void>): Promise<void> {
    const all = [...entries];
    for (const tokens of [false, true]) {
      await pipelined(
        all.filter(([, e]) => (e.kind === 'agent_token') === tokens),
        async ([key, entry]) => {
          await this.put(kv, key, entry);
          await after();
        },
      );
    }
  }

  /** The whole database under `epoch`, and tombstones for keys it no longer has; returns its seq. */
  private async republish(kv: KV, epoch: number, claimed = false): Promise<number> {
    const snap = await this.feed.snapshot();
    this.log.warn({ event: 'fleet_republish', epoch, seq: snap.seq, from: this.cursor, policies: snap.policies.length, devboxes: snap.devboxes.length }, `republishing a full snapshot as of seq ${snap.seq} (epoch ${epoch}; published up to seq ${this.cursor})`);
    const want = new Map<string, FleetEntry>();
    this.scope = HostScope.from(snap);
    this.agents = AgentScope.from(snap);
    // Policies before devboxes: a sidecar relisting from a half-done republish still finds each devbox's policy.
    for (const { host, policy } of this.scope.wanted()) {
      want.set(policyKey(host, policy.account_id, policy.id), entryOf({ seq: snap.seq, kind: 'policy', id: policy.id, accountId: policy.account_id, value: policy }, epoch));
    }
    for (const d of snap.devboxes) {
      const r = { seq: snap.seq, kind: 'devbox' as const, id: d.id, accountId: d.account_id, hostId: hostOf(d), value: d };
      want.set(devboxKeyOf(r), entryOf(r, epoch));
    }
    const agentWant = new Map(this.agents.wanted().map(({ key, value }) => [key, agentEntry(value, snap.seq, epoch)] as const));
    let refreshed = Date.now();
    const refresh = async () => {
      if (claimed && Date.now() - refreshed > CLAIM_MS / 5) {
        refreshed = Date.now();
        await this.refreshClaim(kv, epoch);
      }
    };
    // Keys are independent: PIPELINE puts in flight at once, policies first (see above).
    const entries = [...want];
    await pipelined(
      entries.filter(([k]) => k.startsWith('policy.')),
      async ([key, entry]) => {
        await this.put(kv, key, entry);
        await refresh();
      },
    );
    await pipelined(
      entries.filter(([k]) => !k.startsWith('policy.')),
      async ([key, entry]) => {
        await this.put(kv, key, entry);
        await refresh();
      },
    );
    await this.putAgentEntries(kv, agentWant, refresh);
    const stale: string[] = [];
    for (const filter of ['policy.>', 'devbox.>']) for await (const key of await kv.keys(filter)) if (!want.has(key)) stale.push(key);
    for await (const key of await kv.keys('agent.>')) if (!agentWant.has(key)) stale.push(key);
    await pipelined(stale, async (key) => {
      const tomb = tombstoneFor(key, snap.seq, epoch);
      if (tomb) await this.put(kv, key, tomb);
    });
    this.cursor = Math.max(this.cursor, snap.seq);
    await this.raiseWatermark(kv, { epoch, seq: this.cursor });
    fleetSnapshots.inc();
    return snap.seq;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.stopForgeryWatch?.();
    this.wake?.();
    await this.conn?.close();
    // A first connection still being attempted (NATS down since start) is not waited for.
    await Promise.race([this.done?.catch(() => {}), new Promise((r) => setTimeout(r, 1000).unref())]);
  }
}

/** The key prefixes holding entries (keys.ts); `meta.` and `dead.` hold none. */
const ENTRY_PREFIXES = ['policy', 'devbox', 'agent'] as const;

function agentEntry(v: AgentValue, seq: number, epoch: number): FleetEntry {
  return { ...v, seq, epoch } as FleetEntry;
}

/** Puts in flight at once during a republish. */
const PIPELINE = 32;

/** Runs `fn` over `items`, at most PIPELINE at a time; the first failure fails the whole. */
async function pipelined<T>(items: readonly T[], fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(PIPELINE, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

function isRevisionConflict(e: unknown): boolean {
  const msg = (e as Error).message ?? '';
  return /wrong last sequence|key exists|10071|10164/i.test(msg) || (e as { api_error?: { err_code?: number } }).api_error?.err_code === 10071;
}

function isTooLarge(e: unknown): boolean {
  return /max_payload|maximum payload|message size exceeds/i.test((e as Error).message ?? '');
}
