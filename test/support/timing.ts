/**
 * Cost comparisons for the linear-time tests on a shared, noisy machine: each candidate
 * is run several times, interleaved with its control, and the cheapest run of each is
 * compared. Cost is this process's CPU time (process.cpuUsage), not wall time, so time
 * spent descheduled while other processes hold the cores does not count; the minimum is
 * the run least disturbed by cache pollution and GC.
 */

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Cheapest of `runs` CPU timings (ms) of fn, for each of the given functions, interleaved. */
export function fastest(fns: ReadonlyArray<() => unknown>, runs = 7): number[] {
  const best = fns.map(() => Infinity);
  for (let r = 0; r < runs; r++) {
    fns.forEach((fn, i) => {
      const t = cpuMs();
      fn();
      best[i] = Math.min(best[i]!, cpuMs() - t);
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
 * Growth check against a benign control: at sizes 1×, 2× and 4× of `base`, the fastest
 * time of the hostile input and of its control of the same size, interleaved. Work that
 * grows faster than the control's shows as a ratio that climbs with size (a quadratic
 * input: ~2×, then ~4× the ratio at 1×); comparing at equal sizes keeps cache and GC
 * effects, which both share, out of the verdict.
 */
export function growthAgainst(hostile: (size: number) => () => unknown, control: (size: number) => () => unknown, base: number, runs = 9): Array<{ size: number; hostileMs: number; controlMs: number; ratio: number }> {
  return [base, base * 2, base * 4].map((size) => {
    const [h, c] = fastest([hostile(size), control(size)], runs) as [number, number];
    return { size, hostileMs: h, controlMs: c, ratio: h / c };
  });
}

/** One line per size, for assertion messages. */
export function showGrowth(g: ReturnType<typeof growthAgainst>): string {
  return g.map((r) => `${r.size}: ${r.hostileMs.toFixed(2)} vs ${r.controlMs.toFixed(2)} ms (${r.ratio.toFixed(1)}x)`).join('; ');
}
