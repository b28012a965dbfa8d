/**
 * Cost comparisons for the linear-time tests on a shared, noisy machine: each candidate
 * is timed several times, interleaved with its control, and the fastest run of each is
 * compared (the minimum is the run least disturbed by other processes and GC).
 */

/** Fastest of `runs` timings (ms) of fn, for each of the given functions, interleaved. */
export function fastest(fns: ReadonlyArray<() => unknown>, runs = 7): number[] {
  const best = fns.map(() => Infinity);
  for (let r = 0; r < runs; r++) {
    fns.forEach((fn, i) => {
      const t = performance.now();
      fn();
      best[i] = Math.min(best[i]!, performance.now() - t);
    });
  }
  return best;
}

/** fn repeated `times` times, as one timed unit (for sub-microsecond calls). */
export function repeat(fn: () => unknown, times: number): () => void {
  return () => {
    for (let i = 0; i < times; i++) fn();
  };
}

/**
 * Growth check: times make(size) for sizes 1×, 2× and 4× and returns the cost ratios to
 * 1×. Linear work gives ~2 and ~4; quadratic ~4 and ~16.
 */
export function growth(make: (size: number) => () => unknown, base: number, runs = 7): { ms: number[]; ratio2: number; ratio4: number } {
  const ms = fastest([make(base), make(base * 2), make(base * 4)], runs);
  return { ms, ratio2: ms[1]! / ms[0]!, ratio4: ms[2]! / ms[0]! };
}
