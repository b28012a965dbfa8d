/**
 * The process logger: JSON lines (ISO-8601 times) on stdout through a LogWriter, which never
 * blocks the event loop and never holds more than a fixed number of bytes. A destination
 * that is slow, unread, full (ENOSPC, /dev/full) or gone (EPIPE, a closed fd) costs dropped
 * lines, counted in egress_log_lines_dropped_total, never a stalled gateway or a growing heap.
 *
 * Each process and each thread that logs makes its own writer (its own bounded buffer): the
 * lines of one writer are whole and in order; writers of several processes interleave by line
 * only as far as the kernel keeps each write whole (pipes: up to PIPE_BUF per write).
 */
import fs from 'node:fs';
import net from 'node:net';
import tty from 'node:tty';
import { isMainThread } from 'node:worker_threads';
import { pino, type Logger } from 'pino';

/** Bytes a writer may hold that the destination has not taken yet (past it, lines are dropped). */
export const DEFAULT_LOG_BUFFER_BYTES = 4 * 1024 * 1024;

const PIPE_BUF = 4096;

/** Lines dropped by every writer in this process (read by /metrics). */
let droppedLines = 0;
export function logLinesDropped(): number {
  return droppedLines;
}

type Sink =
  /** A pipe, socket or terminal: libuv writes it without blocking and queues what it cannot take. */
  | { t: 'stream'; s: net.Socket | tty.WriteStream }
  /** A file or a character device: one fs.write at a time off the event loop. */
  | { t: 'file'; fd: number }
  | { t: 'none' };

function openSink(fd: number): Sink {
  let st: fs.Stats;
  try {
    st = fs.fstatSync(fd);
  } catch {
    return { t: 'none' }; // closed (`>&-`)
  }
  if (tty.isatty(fd) || st.isFIFO() || st.isSocket()) {
    // On the main thread, the process's own stdout/stderr object when it is that fd (two libuv
    // handles of one loop must not share an fd). A worker thread's process.stdout is relayed
    // through the main thread without bound, so a worker writes the fd itself, on its own loop.
    if (isMainThread && fd === 1) return { t: 'stream', s: process.stdout as net.Socket };
    if (isMainThread && fd === 2) return { t: 'stream', s: process.stderr as net.Socket };
    return { t: 'stream', s: tty.isatty(fd) ? new tty.WriteStream(fd) : new net.Socket({ fd, readable: false, writable: true }) };
  }
  return { t: 'file', fd };
}

export class LogWriter {
  private sink: Sink;
  /** Lines taken but not handed to the sink yet (batched per event-loop turn). */
  private pending: string[] = [];
  private pendingBytes = 0;
  /** File sink: bytes (and lines) of the write in flight. */
  private inFlight: { bytes: number; lines: number } | null = null;
  private scheduled = false;
  private broken = false;
  private readonly idle: Array<() => void> = [];

  constructor(
    fd = 1,
    public capBytes = DEFAULT_LOG_BUFFER_BYTES,
  ) {
    this.sink = openSink(fd);
    if (this.sink.t === 'none') this.broken = true;
    if (this.sink.t === 'stream') {
      const s = this.sink.s;
      // A broken pipe (EPIPE) or a reset socket: nothing will ever be read again.
      s.on('error', () => this.breakSink());
      s.on('drain', () => this.settle());
      // Logging must not keep the process alive.
      (s as net.Socket).unref?.();
    }
  }

  /** Lines dropped by this writer. */
  dropped = 0;

  /** Called by pino with one serialised line (newline included). */
  write(line: string): void {
    if (this.broken || this.held() + line.length > this.capBytes) {
      this.drop(1);
      return;
    }
    this.pending.push(line);
    this.pendingBytes += line.length;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.push);
    }
  }

  /** Bytes held in this process for the destination. */
  held(): number {
    const queued = this.sink.t === 'stream' ? this.sink.s.writableLength : (this.inFlight?.bytes ?? 0);
    return this.pendingBytes + queued;
  }

  private drop(n: number): void {
    this.dropped += n;
    droppedLines += n;
  }

  private breakSink(): void {
    if (this.broken) return;
    this.broken = true;
    this.drop(this.pending.length);
    this.pending = [];
    this.pendingBytes = 0;
    if (this.sink.t === 'stream') this.sink.s.destroy();
    this.settle();
  }

  private readonly push = (): void => {
    this.scheduled = false;
    if (this.pending.length === 0 || this.broken) return;
    if (this.sink.t === 'stream') {
      const s = this.sink.s;
      // Whole lines in writes of at most PIPE_BUF bytes: the kernel keeps each one whole
      // when several processes (DNS workers) write the same pipe.
      let chunk = '';
      for (const line of this.pending) {
        if (chunk.length > 0 && chunk.length + line.length > PIPE_BUF) {
          s.write(chunk, this.settleCb);
          chunk = '';
        }
        chunk += line;
      }
      this.pending = [];
      this.pendingBytes = 0;
      s.write(chunk, this.settleCb);
      return;
    }
    if (this.sink.t === 'file' && this.inFlight === null) this.writeFile(this.sink.fd);
  };

  private writeFile(fd: number): void {
    const lines = this.pending.length;
    const buf = Buffer.from(this.pending.join(''), 'utf8');
    this.pending = [];
    this.pendingBytes = 0;
    this.inFlight = { bytes: buf.length, lines };
    const done = (err: NodeJS.ErrnoException | null, written: number): void => {
      if (err === null && written < buf.length) {
        fs.write(fd, buf, written, buf.length - written, null, (e, n) => done(e, written + n));
        return;
      }
      this.inFlight = null;
      if (err !== null) {
        // ENOSPC, EIO, …: this batch is lost (not retried); a later one may go through.
        this.drop(lines);
        if (err.code === 'EBADF' || err.code === 'EPIPE') this.breakSink();
      }
      if (this.pending.length > 0 && !this.broken) this.writeFile(fd);
      else this.settle();
    };
    fs.write(fd, buf, 0, buf.length, null, (e, n) => done(e, n));
  }

  private readonly settleCb = (): void => this.settle();

  private settle(): void {
    if (this.held() > 0 && !this.broken) return;
    for (const f of this.idle.splice(0)) f();
  }

  /**
   * Resolves once everything taken is written, or after `timeoutMs` (what is still held then
   * is counted as dropped). For exit: a stalled destination delays it by at most timeoutMs.
   */
  flush(timeoutMs = 1000): Promise<void> {
    this.push();
    if (this.broken || this.held() === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        const i = this.idle.indexOf(done);
        if (i >= 0) this.idle.splice(i, 1);
        this.drop(this.pending.length);
        resolve();
      }, timeoutMs);
      const done = () => {
        clearTimeout(t);
        resolve();
      };
      this.idle.push(done);
    });
  }
}

export interface ProcessLogger {
  log: Logger;
  writer: LogWriter;
  /** Writes out what is held, waiting at most timeoutMs (start-up lines, exit). */
  flush(timeoutMs?: number): Promise<void>;
}

const writers = new Map<number, LogWriter>();

/** The one writer of this process (or thread) for `fd`. */
export function logWriterFor(fd = 1): LogWriter {
  let w = writers.get(fd);
  if (w === undefined) writers.set(fd, (w = new LogWriter(fd)));
  return w;
}

export function createLogger(level: string, base: Record<string, unknown> = {}, writer = logWriterFor(1), bufferBytes?: number): ProcessLogger {
  if (bufferBytes !== undefined) writer.capBytes = bufferBytes;
  const log = pino({ level, base: { service: 'egress-gateway', ...base }, timestamp: pino.stdTimeFunctions.isoTime }, writer);
  return { log, writer, flush: (ms) => writer.flush(ms) };
}

/**
 * Log lines written after the current I/O callbacks (setImmediate), at most `slice` per turn
 * of the event loop: an answer never waits for a line's serialisation, and a burst (a
 * flood's denials, a second's folded repeats) never holds every other client's answer for
 * the time a thousand lines take (a backlog is written half per turn, so it stays bounded).
 * Lines stay in order; flush() writes the rest at once.
 */
export class DeferredLines {
  private lines: Array<{ level: 'info' | 'warn'; obj: object; msg: string }> = [];
  private at = 0;

  constructor(
    private readonly log: Logger,
    private readonly slice = 32,
  ) {}

  info(obj: object, msg: string): void {
    this.push('info', obj, msg);
  }

  warn(obj: object, msg: string): void {
    this.push('warn', obj, msg);
  }

  private push(level: 'info' | 'warn', obj: object, msg: string): void {
    this.lines.push({ level, obj, msg });
    if (this.lines.length - this.at === 1) setImmediate(this.writeSome);
  }

  private readonly writeSome = (): void => {
    // At least half the backlog, so lines made faster than a slice a turn (a flood) cannot
    // pile up: what is held stays within about twice what one turn makes.
    const backlog = this.lines.length - this.at;
    const end = Math.min(this.lines.length, this.at + Math.max(this.slice, Math.ceil(backlog / 2)));
    this.write(end);
    if (end >= this.lines.length) return this.reset();
    if (this.at > 1024) {
      // Drop what was written, so a backlog that never empties does not keep it alive.
      this.lines = this.lines.slice(this.at);
      this.at = 0;
    }
    setImmediate(this.writeSome);
  };

  /** Lines waiting to be written. */
  get held(): number {
    return this.lines.length - this.at;
  }

  private write(end: number): void {
    for (; this.at < end; this.at++) {
      const l = this.lines[this.at]!;
      this.log[l.level](l.obj, l.msg);
    }
  }

  private reset(): void {
    this.lines = [];
    this.at = 0;
  }

  /** Writes every pending line now (at shutdown). */
  flush(): void {
    this.write(this.lines.length);
    this.reset();
  }
}
