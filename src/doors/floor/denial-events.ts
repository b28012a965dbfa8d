/**
 * The per-devbox record of recent denials and would-denials ("tell me which domain was
 * blocked"): doors hand every one to record(), which only adds into an in-memory table
 * keyed by (devbox, host, port, door, reason, decision); a timer writes the table to the
 * store in one batch. A door never waits on the database: when the store is busy the batch
 * is kept for the next flush, and past MAX_PENDING keys new ones are dropped and counted.
 */
import type { Logger } from 'pino';
import type { GatewayConfig } from '../../config.js';
import { Counter } from 'prom-client';
import { type Decision, type Door, decisionLabel } from '../../policy/decision.js';
import type { Identity } from '../../policy/engine.js';
import { registry } from '../../metrics.js';
import type { DenialSink } from './gate.js';
import type { DenialEventBatchRow, DenialLimits } from '../../store/index.js';

/** What the recorder writes through (the store). Throws when the write could not be made. */
/** The sqlite store writes at once (a throw: busy, kept for the next flush); PostgreSQL answers later. */
export interface DenialEventWriter {
  writeDenialEvents(rows: readonly DenialEventBatchRow[], limits: DenialLimits): void | Promise<void>;
}

export interface DenialRecorderOptions {
  flushMs: number;
  retentionHours: number;
  /** 0: record nothing. */
  maxPerDevbox: number;
}

/** The recorder's settings from the gateway's (serve and workers alike). */
export function recorderOptions(config: Pick<GatewayConfig, 'eventsFlushMs' | 'eventsRetentionHours' | 'eventsMaxPerDevbox'>): DenialRecorderOptions {
  return { flushMs: config.eventsFlushMs, retentionHours: config.eventsRetentionHours, maxPerDevbox: config.eventsMaxPerDevbox };
}

/** Distinct keys held between flushes; more are dropped (and counted) until the next flush. */
export const MAX_PENDING = 10_000;
/** Rows written per turn of the event loop by the timer's flush. */
const FLUSH_SLICE = 128;
/** Hosts are stored at most this long (a DNS name is at most 253 characters). */
const MAX_HOST = 255;

const dropped = new Counter({
  name: 'egress_denial_events_dropped_total',
  help: 'Denials and would-denials not recorded in the per-devbox record, by cause (pending_full, write_failed)',
  labelNames: ['cause'] as const,
  registers: [registry],
});

const flushed = new Counter({
  name: 'egress_denial_events_written_total',
  help: 'Rows written to the per-devbox denial record (one per distinct destination and batch)',
  registers: [registry],
});

export class DenialRecorder implements DenialSink {
  private pending = new Map<string, DenialEventBatchRow>();
  private readonly timer: NodeJS.Timeout;
  private warnedAt = 0;

  constructor(
    private readonly accountOf: (devboxId: string) => string | undefined,
    private readonly writer: DenialEventWriter,
    private readonly opts: DenialRecorderOptions,
    private readonly log: Logger,
  ) {
    this.timer = setInterval(() => this.flush(FLUSH_SLICE), opts.flushMs);
    this.timer.unref();
  }

  record(identity: Identity, door: Door, decision: Decision, port: number): void {
    const devboxId = identity.devboxId;
    if (devboxId === null || this.opts.maxPerDevbox === 0) return;
    const label = decisionLabel(decision);
    if (label === 'allow') return;
    const host = decision.host.length > MAX_HOST ? decision.host.slice(0, MAX_HOST) : decision.host;
    const key = `${devboxId}\u0000${host}\u0000${port}\u0000${door}\u0000${decision.reason}\u0000${label}`;
    const now = Date.now();
    const row = this.pending.get(key);
    if (row !== undefined) {
      row.count++;
      row.lastSeenMs = now;
      return;
    }
    if (this.pending.size >= MAX_PENDING) {
      dropped.labels('pending_full').inc();
      return;
    }
    const accountId = this.accountOf(devboxId);
    if (accountId === undefined) return;
    this.pending.set(key, {
      accountId,
      devboxId,
      policyId: decision.policyId,
      host,
      port,
      door,
      reason: decision.reason,
      decision: label,
      count: 1,
      firstSeenMs: now,
      lastSeenMs: now,
    });
  }

  /**
   * Writes what was recorded since the last flush: all of it now (`slice` Infinity, at
   * shutdown), or `slice` rows per turn of the event loop (the timer), so a second's
   * thousand denied destinations never hold every door's answers for one long transaction.
   */
  flush(slice = Infinity): void {
    if (this.writing !== null) {
      // A sliced write is under way: finish it first (shutdown), or let it go on (timer).
      if (slice !== Infinity) return;
      const rest = this.writing;
      this.writing = null;
      if (!this.write(rest, Infinity)) return;
    }
    if (this.pending.size === 0) return;
    const batch = [...this.pending];
    this.pending = new Map();
    this.write(batch, slice);
  }

  /** Rows of a batch not written yet, while a sliced write goes on. */
  private writing: Array<[string, DenialEventBatchRow]> | null = null;

  /** Writes `slice` rows of `rows` now and schedules the rest; false when the write failed (rows kept). */
  private write(rows: Array<[string, DenialEventBatchRow]>, slice: number): boolean {
    const now = Date.now();
    const part = rows.length > slice ? rows.slice(0, slice) : rows;
    const failed = (e: unknown, kept: Array<[string, DenialEventBatchRow]>) => {
      this.keep(new Map(kept));
      if (now - this.warnedAt > 10_000) {
        this.warnedAt = now;
        this.log.warn({ event: 'denial_events_write_failed', err: (e as Error).message, pending: this.pending.size }, 'could not write the denial record; kept for the next flush');
      }
    };
    try {
      const done = this.writer.writeDenialEvents(
        part.map((r) => r[1]),
        { retentionMs: this.opts.retentionHours * 3_600_000, maxPerDevbox: this.opts.maxPerDevbox, now },
      );
      // PostgreSQL answers later: a slice it refuses is kept for the next flush.
      if (done instanceof Promise)
        done.then(
          () => flushed.inc(part.length),
          (e: unknown) => failed(e, part),
        );
      else flushed.inc(part.length);
    } catch (e) {
      failed(e, rows);
      return false;
    }
    if (part === rows) return true;
    const rest = rows.slice(part.length);
    this.writing = rest;
    setImmediate(() => {
      if (this.writing !== rest) return; // finished by a shutdown flush
      this.writing = null;
      this.write(rest, slice);
    });
    return true;
  }

  /** Puts a batch that could not be written back in front of what arrived since, within the bound. */
  private keep(batch: Map<string, DenialEventBatchRow>): void {
    for (const [k, row] of this.pending) {
      const old = batch.get(k);
      if (old === undefined) batch.set(k, row);
      else {
        old.count += row.count;
        old.lastSeenMs = row.lastSeenMs;
      }
    }
    if (batch.size > MAX_PENDING) {
      let over = batch.size - MAX_PENDING;
      dropped.labels('write_failed').inc(over);
      for (const k of batch.keys()) {
        if (over-- <= 0) break;
        batch.delete(k);
      }
    }
    this.pending = batch;
  }

  close(): void {
    clearInterval(this.timer);
    this.flush();
  }
}
