/**
 * The data plane's PolicySource when the control plane is on PostgreSQL: policies and
 * devboxes held in memory (the engine reads synchronously, per connection), loaded from the
 * change feed's snapshot and kept current by following `changesSince`. A short poll (100 ms)
 * picks up other replicas' writes; this process's own API asks for a `refresh()` after each
 * write it commits and answers its client only once the doors have it (see api/thread.ts).
 * A poll rather than LISTEN/NOTIFY: a held LISTEN connection adds a reconnect path of its own
 * and NOTIFY gives nothing the seq does not; the poll is one indexed query.
 *
 * When the database is down the doors keep enforcing the last state they read (fail-static);
 * a reader that fell out of the feed's window takes a whole new snapshot, never a partial mix.
 */
import type { Logger } from 'pino';
import { MemorySource } from '../policy/memory-source.js';
import type { Devbox, NetworkPolicy } from '../policy/model.js';
import type { PolicySource, SourceChange } from '../policy/source.js';
import type { ChangeFeed, ChangeRecord } from './change-feed.js';
import { FollowedCredentials } from './followed-credentials.js';
import type { SecretBox } from './secret-box.js';

const BATCH = 1000;

export interface FollowerOptions {
  pollMs?: number;
  log?: Logger;
  /** Opens the secrets the doors apply; none: secret lookups answer nothing. */
  box?: SecretBox | null;
}

/** Reads an explicit refresh tries before it gives up (and the API answers anyway, logged). */
const REFRESH_ATTEMPTS = 8;

export class FeedFollower implements PolicySource {
  private readonly mem = new MemorySource();
  private seq = 0;
  private chain: Promise<void> = Promise.resolve();
  private busy = false;
  /** Explicit refreshes waiting or running (the timer does not queue behind them). */
  private queued = 0;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private failing = false;
  /** The agent resources (issue 21): what the agent-gateway and MCP-hub doors read. */
  readonly credentials: FollowedCredentials;

  private constructor(
    private readonly feed: ChangeFeed,
    private readonly log?: Logger,
    box: SecretBox | null = null,
  ) {
    this.credentials = new FollowedCredentials(box, (id) => this.mem.getDevbox(id));
  }

  /** Loads the snapshot (a database that does not answer is an error here) and starts following. */
  static async start(feed: ChangeFeed, opts: FollowerOptions = {}): Promise<FeedFollower> {
    const f = new FeedFollower(feed, opts.log, opts.box ?? null);
    await f.resync();
    f.timer = setInterval(() => {
      if (!f.busy && f.queued === 0) void f.poll();
    }, opts.pollMs ?? 100);
    f.timer.unref();
    return f;
  }

  /** The seq of the last change applied. */
  get position(): number {
    return this.seq;
  }

  getPolicy(id: string): NetworkPolicy | undefined {
    return this.mem.getPolicy(id);
  }

  getDevbox(id: string): Devbox | undefined {
    return this.mem.getDevbox(id);
  }

  runningDevboxes(): Devbox[] {
    return this.mem.runningDevboxes();
  }

  onChange(listener: (change: SourceChange) => void): () => void {
    return this.mem.onChange(listener);
  }

  /**
   * Reads what was committed up to now; resolves once applied (or once the read failed eight
   * times: the first query after the database came back can meet a pooled connection it killed).
   */
  refresh(): Promise<void> {
    this.queued++;
    this.chain = this.chain.then(async () => {
      try {
        for (let attempt = 1; ; attempt++) {
          await this.catchUp();
          if (!this.failing || attempt === REFRESH_ATTEMPTS || this.closed) return;
          await new Promise((r) => setTimeout(r, 50 * attempt));
        }
      } finally {
        this.queued--;
      }
    });
    return this.chain;
  }

  /** The timer's read: one attempt, never queued behind (or ahead of) an explicit refresh. */
  private poll(): Promise<void> {
    this.chain = this.chain.then(() => this.catchUp());
    return this.chain;
  }

  private async catchUp(): Promise<void> {
    if (this.closed) return;
    this.busy = true;
    const recovering = this.failing;
    try {
      for (;;) {
        const batch = await this.feed.changesSince(this.seq, BATCH);
        if (batch.length === 0) break;
        if (batch[0]!.seq !== this.seq + 1) {
          this.log?.warn({ event: 'change_feed_resync', at: this.seq, next: batch[0]!.seq }, 'fell out of the change feed window; loading a full snapshot');
          await this.resync();
          break;
        }
        for (const c of batch) this.apply(c);
        if (batch.length < BATCH) break;
      }
      // A database back from a crash or a failover may have lost its newest commits: its
      // seqs then start again below ours, and following would skip every new write.
      if (recovering && (await this.feed.lastSeq()) < this.seq) {
        this.log?.warn({ event: 'change_feed_rewound', at: this.seq }, 'the policy store came back behind what was read; loading a full snapshot');
        await this.resync();
      }
      if (this.failing) this.log?.info({ event: 'change_feed_resumed', seq: this.seq }, 'the policy store answers again');
      this.failing = false;
    } catch (e) {
      if (!this.failing) this.log?.error({ event: 'change_feed_failed', err: (e as Error).message, seq: this.seq }, 'cannot read the policy store; enforcing the last state read');
      this.failing = true;
    } finally {
      this.busy = false;
    }
  }

  private apply(c: ChangeRecord): void {
    if (c.kind === 'policy') {
      if (c.value === null) this.mem.deletePolicy(c.id);
      else this.mem.setPolicy(c.value);
    } else if (c.kind === 'devbox') {
      if (c.value === null) this.mem.deleteDevbox(c.id);
      else this.mem.setDevbox(c.value);
      this.credentials.devboxChanged(c.id, c.value);
    } else this.credentials.apply(c);
    this.seq = c.seq;
  }

  /** Replaces the whole content with a snapshot: what it lacks goes, then everything in it is set. */
  private async resync(): Promise<void> {
    const snap = await this.feed.snapshot();
    const policies = new Set(snap.policies.map((p) => p.id));
    const devboxes = new Set(snap.devboxes.map((d) => d.id));
    const held = this.mem.ids();
    for (const id of held.policies) if (!policies.has(id)) this.mem.deletePolicy(id);
    for (const id of held.devboxes) if (!devboxes.has(id)) this.mem.deleteDevbox(id);
    for (const p of snap.policies) this.mem.setPolicy(p);
    for (const d of snap.devboxes) this.mem.setDevbox(d);
    if (snap.agents) this.credentials.load(snap.agents);
    this.seq = snap.seq;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
  }
}
