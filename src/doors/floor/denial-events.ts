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

/** The recorder's settings from the gateway's (serve and DNS workers alike). */
export function recorderOptions(config: Pick<GatewayConfig, 'eventsFlushMs' | 'eventsRetentionHours' | 'eventsMaxPerDevbox'>): DenialRecorderOptions {
  return { flushMs: config.eventsFlushMs, retentionHours: config.eventsRetentionHours, maxPerDevbox: config.eventsMaxPerDevbox };
}

/** Distinct keys held between flushes; more are dropped (and counted) until the next flush. */
export const MAX_PENDING = 10_000;
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
    this.timer = setInterval(() => this.flush(), opts.flushMs);
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
      accountId, devboxId, policyId: decision.policyId, host, port, door, reason: decision.reason, decision: label,
      count: 1, firstSeenMs: now, lastSeenMs: now,
    });
  }

  /** Writes what was recorded since the last flush (also called at shutdown). */
  flush(): void {
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    const now = Date.now();
    let done: void | Promise<void>;
    try {
      done = this.writer.writeDenialEvents([...batch.values()], { retentionMs: this.opts.retentionHours * 3_600_000, maxPerDevbox: this.opts.maxPerDevbox, now });
    } catch (e) {
      this.failed(batch, e, now);
      return;
    }
    if (done instanceof Promise) done.then(() => flushed.inc(batch.size), (e: unknown) => this.failed(batch, e, now));
    else flushed.inc(batch.size);
  }

  private failed(batch: Map<string, DenialEventBatchRow>, e: unknown, now: number): void {
    this.keep(batch);
    if (now - this.warnedAt > 10_000) {
      this.warnedAt = now;
      this.log.warn({ event: 'denial_events_write_failed', err: (e as Error).message, pending: this.pending.size }, 'could not write the denial record; kept for the next flush');
    }
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
