/**
 * What every fuzz target shares: a property failure type, a per-input CPU-time guard (a
 * slow input is a finding, not just a hang), and the deterministic chunk splits the
 * per-chunk differentials use. Targets stay free of any fuzzer import, so the corpus
 * replay test (vitest) runs them as they are.
 */

/** A broken property: the input is a finding. */
export class PropertyViolation extends Error {
  override name = 'PropertyViolation';
}

export function check(cond: boolean, what: string): asserts cond {
  if (!cond) throw new PropertyViolation(what);
}

export function same(a: unknown, b: unknown, what: string): void {
  const ja = JSON.stringify(a);
  const jb = JSON.stringify(b);
  if (ja !== jb) throw new PropertyViolation(`${what}: ${ja?.slice(0, 300)} !== ${jb?.slice(0, 300)}`);
}

/**
 * CPU budget of one parser call, in ms (FUZZ_SLOW_MS; default 50). Inputs are at most the
 * door's limit (64 KB), which every parser reads in well under a millisecond. CPU time,
 * not wall time, so a loaded, shared machine does not raise false findings.
 */
export const SLOW_MS = Number(process.env.FUZZ_SLOW_MS ?? 50);

function cpuMs<T>(fn: () => T): { r: T; ms: number } {
  const t0 = process.cpuUsage();
  const r = fn();
  const d = process.cpuUsage(t0);
  return { r, ms: (d.user + d.system) / 1000 };
}

/**
 * Runs fn; a call costing more than SLOW_MS of CPU is a finding. The process's CPU time
 * also counts V8's background compiler and GC threads, so an over-budget call is timed
 * twice more and only a call slow every time counts (a slow input stays slow).
 */
export function timed<T>(what: string, fn: () => T): T {
  const first = cpuMs(fn);
  if (first.ms <= SLOW_MS) return first.r;
  const least = Math.min(first.ms, cpuMs(fn).ms, cpuMs(fn).ms);
  if (least > SLOW_MS) throw new PropertyViolation(`${what} took ${least.toFixed(1)} ms of CPU (budget ${SLOW_MS} ms)`);
  return first.r;
}

/** Small deterministic PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function hashBytes(data: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < data.length; i++) h = Math.imul(h ^ data[i]!, 0x01000193);
  return h >>> 0;
}

/**
 * The input cut into chunks, as a socket might deliver it: derived from the input itself
 * (reproducible from the corpus file alone). Short inputs are sometimes cut into single
 * bytes; otherwise 1–12 chunks at random offsets.
 */
export function chunks(data: Buffer): Buffer[] {
  const next = rng(hashBytes(data));
  if (data.length === 0) return [];
  if (data.length <= 96 && next() < 0.25) return [...data].map((b) => Buffer.from([b]));
  const n = 1 + Math.floor(next() * Math.min(12, data.length));
  const cuts = new Set<number>();
  while (cuts.size < n - 1) cuts.add(1 + Math.floor(next() * (data.length - 1)));
  const at = [0, ...[...cuts].sort((a, b) => a - b), data.length];
  const out: Buffer[] = [];
  for (let i = 0; i + 1 < at.length; i++) out.push(data.subarray(at[i], at[i + 1]));
  return out;
}

/** Reads bytes of `data` as a little structure builder (for structure-aware targets). */
export class Bytes {
  private at = 0;
  constructor(readonly data: Buffer) {}
  get left(): number {
    return this.data.length - this.at;
  }
  u8(): number {
    return this.at < this.data.length ? this.data[this.at++]! : 0;
  }
  u16(): number {
    return (this.u8() << 8) | this.u8();
  }
  bool(): boolean {
    return (this.u8() & 1) === 1;
  }
  take(n: number): Buffer {
    const b = this.data.subarray(this.at, Math.min(this.data.length, this.at + n));
    this.at += b.length;
    return b;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.u8() % xs.length]!;
  }
}

/**
 * The input with its longest run of one byte (≥ 8) stretched so the whole is about `size`
 * bytes, or null without such a run. A linear parser reads it well within the budget; a
 * backtracking one (a regex with adjacent quantifiers over that run) does not. It lets a
 * small input the fuzzer finds stand for the largest one the door accepts.
 */
export function stretched(data: Buffer, size: number): Buffer | null {
  let best = 0;
  let bestAt = -1;
  for (let i = 0; i < data.length; ) {
    let j = i + 1;
    while (j < data.length && data[j] === data[i]) j++;
    if (j - i > best) {
      best = j - i;
      bestAt = i;
    }
    i = j;
  }
  if (best < 8 || data.length >= size) return null;
  const end = bestAt + best;
  return Buffer.concat([data.subarray(0, end), Buffer.alloc(size - data.length, data[bestAt]!), data.subarray(end)]);
}
