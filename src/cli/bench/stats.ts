/** Latency samples → percentiles, rates and tables (text and markdown). Shared by `bench` and bench/*.ts. */

export interface LatencySummary {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentile of an ascending array (p in 0..100). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function summarize(samples: readonly number[]): LatencySummary {
  if (samples.length === 0) return { p50: 0, p90: 0, p99: 0, max: 0, mean: 0 };
  const sorted = Float64Array.from(samples).sort();
  const arr = Array.from(sorted);
  let sum = 0;
  for (const v of arr) sum += v;
  return { p50: percentile(arr, 50), p90: percentile(arr, 90), p99: percentile(arr, 99), max: arr[arr.length - 1]!, mean: sum / arr.length };
}

/** Collects outcomes of one scenario. Latencies in milliseconds. */
export class Recorder {
  readonly samples: number[] = [];
  ok = 0;
  unexpected = 0;
  errors = 0;
  readonly errorSamples: string[] = [];
  readonly started = performance.now();

  /** ok: the expected decision; unexpected: the opposite decision; error: no decision (time-out, reset, 5xx). */
  record(ms: number, outcome: 'ok' | 'unexpected' | 'error', detail?: string): void {
    this.samples.push(ms);
    if (outcome === 'ok') this.ok++;
    else if (outcome === 'unexpected') this.unexpected++;
    else this.errors++;
    if (outcome !== 'ok' && detail !== undefined && this.errorSamples.length < 5 && !this.errorSamples.includes(detail)) this.errorSamples.push(detail);
  }

  get count(): number {
    return this.samples.length;
  }
}

export function formatMs(ms: number): string {
  if (ms >= 100) return ms.toFixed(0);
  if (ms >= 10) return ms.toFixed(1);
  return ms.toFixed(2);
}

export function formatRate(r: number): string {
  return r >= 100 ? r.toFixed(0) : r.toFixed(1);
}

/** A plain-text table with aligned columns (first column left, the rest right). */
export function textTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** A GitHub-flavoured markdown table (numbers right-aligned). */
export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const align = header.map((_, i) => (i === 0 ? '---' : '---:'));
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(align), ...rows.map(line)].join('\n');
}
