/**
 * Addresses a devbox learned through allowed DNS answers (Cilium's DNS-learned
 * identities): an IP-literal connection to one of them is admitted until TTL + grace.
 *
 * Bounded per devbox (--dns-learn-per-devbox): a devbox at its bound learns nothing new until
 * some of its addresses expire (new ones are dropped and counted by the caller, the answer
 * is still served). Dropping the new rather than evicting the old keeps the work a flood of
 * fresh names causes bounded: at the bound, an answer costs no learning and nothing to pass
 * on to the other workers.
 */
export interface LearnedEntry {
  name: string;
  expiresAt: number;
}

interface DevboxLearned {
  /** Least recently learned first. */
  byIp: Map<string, LearnedEntry>;
  /** When expired entries were last swept out (ms): at most once a second, and only at the bound. */
  sweptAt: number;
}

export class LearnedAddresses {
  private readonly byDevbox = new Map<string, DevboxLearned>();
  /** Told of every entry that is new or lives longer than before (a worker passes them on to the others). */
  onLearn: ((devboxId: string, name: string, ip: string, expiresAt: number) => void) | null = null;

  constructor(readonly maxPerDevbox = 4096) {}

  /** Learns `ips` for ttlSeconds; returns how many were dropped (the devbox is at its bound). */
  learn(devboxId: string, name: string, ips: readonly string[], ttlSeconds: number, now = Date.now()): number {
    return this.learnUntil(devboxId, name, ips, now + ttlSeconds * 1000, now);
  }

  /** learn() with an absolute expiry (ms since the epoch); returns how many were dropped. */
  learnUntil(devboxId: string, name: string, ips: readonly string[], expiresAt: number, now = Date.now()): number {
    let d = this.byDevbox.get(devboxId);
    if (!d) this.byDevbox.set(devboxId, (d = { byIp: new Map(), sweptAt: 0 }));
    const m = d.byIp;
    let dropped = 0;
    for (const ip of ips) {
      const prev = m.get(ip);
      if (prev && prev.expiresAt >= expiresAt) continue;
      if (prev === undefined && m.size >= this.maxPerDevbox && !this.sweep(d, now)) {
        dropped++;
        continue;
      }
      m.delete(ip); // re-insert so the map's order is least-recently-learned first
      m.set(ip, { name, expiresAt });
      this.onLearn?.(devboxId, name, ip, expiresAt);
    }
    return dropped;
  }

  /** Removes the devbox's expired entries (once a second at most); true when there is room now. */
  private sweep(d: DevboxLearned, now: number): boolean {
    if (now - d.sweptAt >= 1000) {
      d.sweptAt = now;
      for (const [ip, e] of d.byIp) if (e.expiresAt < now) d.byIp.delete(ip);
    }
    return d.byIp.size < this.maxPerDevbox;
  }

  lookup(devboxId: string, ip: string, now = Date.now()): LearnedEntry | undefined {
    const m = this.byDevbox.get(devboxId)?.byIp;
    const e = m?.get(ip);
    if (!e) return undefined;
    if (e.expiresAt < now) {
      m!.delete(ip);
      return undefined;
    }
    return e;
  }

  /** Addresses one devbox holds (expired ones not yet swept included). */
  sizeOf(devboxId: string): number {
    return this.byDevbox.get(devboxId)?.byIp.size ?? 0;
  }

  /** Every entry not yet expired, as learnUntil() takes them (to hand a new worker what the others know). */
  *entries(now = Date.now()): Generator<[devboxId: string, name: string, ip: string, expiresAt: number]> {
    for (const [devboxId, d] of this.byDevbox) {
      for (const [ip, e] of d.byIp) if (e.expiresAt >= now) yield [devboxId, e.name, ip, e.expiresAt];
    }
  }

  forget(devboxId: string): void {
    this.byDevbox.delete(devboxId);
  }
}
