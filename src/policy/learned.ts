/**
 * Addresses a devbox learned through allowed DNS answers (Cilium's DNS-learned
 * identities): an IP-literal connection to one of them is admitted until TTL + grace.
 */
export interface LearnedEntry {
  name: string;
  expiresAt: number;
}

export class LearnedAddresses {
  private readonly byDevbox = new Map<string, Map<string, LearnedEntry>>();
  private readonly maxPerDevbox: number;
  /** Told of every entry that is new or lives longer than before (a worker passes them on to the others). */
  onLearn: ((devboxId: string, name: string, ip: string, expiresAt: number) => void) | null = null;

  constructor(maxPerDevbox = 10_000) {
    this.maxPerDevbox = maxPerDevbox;
  }

  learn(devboxId: string, name: string, ips: readonly string[], ttlSeconds: number, now = Date.now()): void {
    this.learnUntil(devboxId, name, ips, now + ttlSeconds * 1000);
  }

  /** learn() with an absolute expiry (ms since the epoch). */
  learnUntil(devboxId: string, name: string, ips: readonly string[], expiresAt: number): void {
    let m = this.byDevbox.get(devboxId);
    if (!m) this.byDevbox.set(devboxId, (m = new Map()));
    for (const ip of ips) {
      const prev = m.get(ip);
      if (prev && prev.expiresAt >= expiresAt) continue;
      m.delete(ip); // re-insert so the map's order is least-recently-learned first
      m.set(ip, { name, expiresAt });
      this.onLearn?.(devboxId, name, ip, expiresAt);
    }
    while (m.size > this.maxPerDevbox) {
      const oldest = m.keys().next().value as string;
      m.delete(oldest);
    }
  }

  lookup(devboxId: string, ip: string, now = Date.now()): LearnedEntry | undefined {
    const e = this.byDevbox.get(devboxId)?.get(ip);
    if (!e) return undefined;
    if (e.expiresAt < now) {
      this.byDevbox.get(devboxId)!.delete(ip);
      return undefined;
    }
    return e;
  }

  /** Every entry not yet expired, as learnUntil() takes them (to hand a new worker what the others know). */
  *entries(now = Date.now()): Generator<[devboxId: string, name: string, ip: string, expiresAt: number]> {
    for (const [devboxId, m] of this.byDevbox) {
      for (const [ip, e] of m) if (e.expiresAt >= now) yield [devboxId, e.name, ip, e.expiresAt];
    }
  }

  forget(devboxId: string): void {
    this.byDevbox.delete(devboxId);
  }
}
