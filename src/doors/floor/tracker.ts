/**
 * Open connections per devbox: enforces the per-devbox connection limit, and when a policy
 * or devbox changes, re-asks decide() for every open connection and cuts the ones the
 * new state denies.
 */
import type { Door } from '../../policy/decision.js';
import type { Identity, PolicyEngine } from '../../policy/engine.js';
import { connectionsCut, countOpen } from '../../metrics.js';

export interface TrackedConnection {
  identity: Identity;
  /** The destination as the client named it (re-decided on every change). */
  host: string;
  port: number;
  door: Door;
  /** Closes every socket of the connection. */
  close(): void;
}

export class ConnectionTracker {
  private readonly open = new Set<TrackedConnection>();
  private readonly perDevbox = new Map<string, number>();
  private readonly stop: () => void;

  constructor(
    private readonly engine: PolicyEngine,
    private readonly maxPerDevbox: number,
  ) {
    this.stop = engine.onChange(() => this.recheck());
  }

  get size(): number {
    return this.open.size;
  }

  /** Registers a connection; false when its devbox is at its connection limit. */
  add(c: TrackedConnection): boolean {
    const id = c.identity.devboxId;
    if (id !== null) {
      const n = this.perDevbox.get(id) ?? 0;
      if (n >= this.maxPerDevbox) return false;
      this.perDevbox.set(id, n + 1);
    }
    this.open.add(c);
    countOpen(c.door, 1);
    // A change may have landed while this connection was being resolved and dialled, after
    // its decision and before it was tracked: judge it once more now (a cached decision).
    if (!this.engine.decide(c.identity, c.host, c.port).allow) setImmediate(() => this.cut(c));
    return true;
  }

  private cut(c: TrackedConnection): void {
    if (!this.open.has(c)) return;
    const d = this.engine.decide(c.identity, c.host, c.port);
    if (d.allow) return;
    connectionsCut.labels(c.door, d.reason).inc();
    this.remove(c);
    c.close();
  }

  remove(c: TrackedConnection): void {
    if (!this.open.delete(c)) return;
    countOpen(c.door, -1);
    const id = c.identity.devboxId;
    if (id !== null) {
      const n = (this.perDevbox.get(id) ?? 1) - 1;
      if (n <= 0) this.perDevbox.delete(id);
      else this.perDevbox.set(id, n);
    }
  }

  /** Re-decides every open connection; called after each applied change. */
  recheck(): void {
    for (const c of [...this.open]) this.cut(c);
  }

  /** Closes everything (shutdown after the drain period). */
  closeAll(): void {
    for (const c of [...this.open]) {
      this.remove(c);
      c.close();
    }
  }

  dispose(): void {
    this.stop();
  }
}
