/**
 * A closed-loop load generator: N workers each run one operation after another until the
 * time is up or the request budget is spent. Each operation reports how it went; the
 * Recorder keeps the latency of every one.
 */
import { Recorder } from './stats.js';

export type Outcome = { outcome: 'ok' | 'unexpected' | 'error'; detail?: string };

export interface LoadOptions {
  concurrency: number;
  durationMs: number;
  /** Stop after this many operations even if time remains. */
  maxCount?: number;
  /** Called about once a second while the load runs. */
  onProgress?: (rec: Recorder, elapsedMs: number) => void;
  progressEveryMs?: number;
}

export async function runLoad(op: () => Promise<Outcome>, opts: LoadOptions): Promise<{ rec: Recorder; elapsedMs: number }> {
  const rec = new Recorder();
  const start = performance.now();
  const deadline = start + opts.durationMs;
  const max = opts.maxCount ?? Number.POSITIVE_INFINITY;
  let issued = 0;
  let lastProgress = start;
  const timer = opts.onProgress
    ? setInterval(() => {
        lastProgress = performance.now();
        opts.onProgress!(rec, lastProgress - start);
      }, opts.progressEveryMs ?? 1000)
    : null;
  const worker = async () => {
    while (performance.now() < deadline && issued < max) {
      issued++;
      const t0 = performance.now();
      let r: Outcome;
      try {
        r = await op();
      } catch (e) {
        r = { outcome: 'error', detail: (e as Error).message };
      }
      rec.record(performance.now() - t0, r.outcome, r.detail);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, opts.concurrency) }, worker));
  } finally {
    if (timer) clearInterval(timer);
  }
  const end = performance.now();
  const elapsedMs = end - start;
  // A last line with the final count, unless one was just printed.
  if (end - lastProgress > 250) opts.onProgress?.(rec, elapsedMs);
  return { rec, elapsedMs };
}

/** "10s", "500ms", "2m", "1.5s" or a bare number of seconds → milliseconds. */
export function parseDuration(text: string): number | null {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m)?$/.exec(text.trim());
  if (!m) return null;
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  const ms = unit === 'ms' ? n : unit === 's' ? n * 1000 : n * 60_000;
  return ms > 0 ? Math.round(ms) : null;
}
