/**
 * DNS-learned addresses on their way between processes (`--workers N`): a devbox may CONNECT
 * to an address the DNS door answered it, and the connection may land in another worker, so
 * an answer that teaches addresses leaves only once every worker has them.
 *
 * What passes them on is an outbox per peer, on the side channel (never node's IPC channel,
 * which hands out accepted connections):
 * - batched: whatever is learned while one batch is in flight goes as the next one;
 * - coalesced: one entry per devbox and address (the longest expiry), however often it is
 *   learned meanwhile;
 * - bounded in flight: one batch at a time per peer, at most MAX_PENDING entries waiting;
 *   past it new entries are dropped (counted) and the answers wait no longer for them.
 */
import { Counter } from 'prom-client';
import { registry } from '../metrics.js';

/** One learned address, as LearnedAddresses.learnUntil takes it. */
export type LearnedEntry = [devboxId: string, name: string, ip: string, expiresAt: number];

/** Entries one outbox holds waiting at most (a few MB). */
export const MAX_PENDING = 65_536;

const dropped = new Counter({
  name: 'egress_learned_share_dropped_total',
  help: 'DNS-learned addresses not passed on to another worker because its outbox was full (--workers N)',
  registers: [registry],
});

export class LearnedOutbox {
  private pending = new Map<string, LearnedEntry>();
  private waiters: Array<() => void> = [];
  private inflight = false;
  private scheduled = false;

  /** `send`: delivers one batch; resolves once the peer took it (or was given up on). */
  constructor(private readonly send: (entries: LearnedEntry[]) => Promise<unknown>) {}

  /** Entries waiting for the next batch. */
  get waiting(): number {
    return this.pending.size;
  }

  /** Queues entries; resolves once the batch carrying them was taken (or given up on). */
  push(entries: Iterable<LearnedEntry>): Promise<void> {
    for (const e of entries) {
      const k = `${e[0]}\u0000${e[2]}`;
      const prev = this.pending.get(k);
      if (prev !== undefined) {
        if (prev[3] < e[3]) this.pending.set(k, e);
      } else if (this.pending.size >= MAX_PENDING) dropped.inc();
      else this.pending.set(k, e);
    }
    const done = new Promise<void>((r) => this.waiters.push(r));
    this.schedule();
    return done;
  }

  /** Sends on the next turn of the event loop: what is learned in one turn goes together. */
  private schedule(): void {
    if (this.scheduled || this.inflight) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    const waiters = this.waiters;
    this.waiters = [];
    if (this.pending.size === 0) {
      for (const w of waiters) w();
      return;
    }
    const batch = [...this.pending.values()];
    this.pending = new Map();
    this.inflight = true;
    const after = () => {
      this.inflight = false;
      for (const w of waiters) w();
      if (this.waiters.length > 0) this.schedule();
    };
    this.send(batch).then(after, after);
  }
}
