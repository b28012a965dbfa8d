/**
 * Process plumbing, written once: the gateway's parts that run apart (the admin API in a
 * thread, door workers in processes) talk over one kind of channel and are kept running by
 * one supervisor.
 *
 * - `Link`: one end of a message channel, whatever carries it (a child process's or cluster
 *   worker's IPC channel, a worker thread, a thread's or child's view of its parent).
 *   Sending on a closed link drops the message, never throws.
 * - `Channel`: typed messages on a link, and requests with a deadline: `ask` stamps a request
 *   with an `id` and resolves with the answer that carries it back as `re`, or with a fallback
 *   once the deadline passes or the link closes (a peer that does not answer is not waited
 *   for longer). Answers are routed here; every other message goes to the handler.
 * - `supervise`: starts a part, restarts it when it exits (after a pause; not again after
 *   repeated quick exits), and stops it (its own drain message, then a kill after the grace).
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';

/** Every message has a kind; a request carries `id`, its answer `re`. */
export interface Message {
  egw: string;
  id?: number;
  re?: number;
}

/**
 * One end of a message channel. `bin`: bytes that go beside the message as they are (a socket
 * link frames them raw; the others do not carry them).
 */
export interface Link {
  send(m: unknown, bin?: Buffer): void;
  on(cb: (m: unknown, bin?: Buffer) => void): void;
  onClose(cb: () => void): void;
  readonly open: boolean;
}

/** The IPC channel of a child process or cluster worker, seen from the parent; or the parent's, seen from the child. */
export interface ProcessLike {
  send?(m: unknown, handle?: undefined, options?: undefined, cb?: (e: Error | null) => void): boolean;
  on(ev: 'message', cb: (m: unknown) => void): unknown;
  on(ev: 'disconnect', cb: () => void): unknown;
  readonly connected?: boolean;
}

export function processLink(p: ProcessLike): Link {
  let closed = false;
  const closers: Array<() => void> = [];
  p.on('disconnect', () => {
    closed = true;
    for (const c of closers.splice(0)) c();
  });
  return {
    // The callback swallows a send on a channel closing under us (EPIPE, ERR_IPC_CHANNEL_CLOSED).
    send: (m) => {
      if (!closed && p.connected !== false) p.send?.(m, undefined, undefined, () => {});
    },
    on: (cb) => void p.on('message', cb),
    onClose: (cb) => void (closed ? cb() : closers.push(cb)),
    get open() {
      return !closed && p.connected !== false;
    },
  };
}

/** A worker thread, seen from its parent (postMessage both ways); or a MessagePort. */
export interface PortLike {
  postMessage(m: unknown): void;
  on(ev: 'message', cb: (m: unknown) => void): unknown;
  once(ev: 'exit' | 'close', cb: () => void): unknown;
}

export function portLink(p: PortLike, closeEvent: 'exit' | 'close' = 'exit'): Link {
  let closed = false;
  const closers: Array<() => void> = [];
  p.once(closeEvent, () => {
    closed = true;
    for (const c of closers.splice(0)) c();
  });
  return {
    send: (m) => {
      if (!closed) p.postMessage(m);
    },
    on: (cb) => void p.on('message', cb),
    onClose: (cb) => void (closed ? cb() : closers.push(cb)),
    get open() {
      return !closed;
    },
  };
}

/** Largest frame a socket link reads: a peer sending more is cut off (the link closes). */
const MAX_FRAME = 64 * 1024 * 1024;

/**
 * A stream socket carrying framed messages (the workers' side channel, a socket pair of its
 * own beside node's IPC channel, so nothing sent on it waits behind, or delays, what the IPC
 * channel carries). A frame: u32 JSON length, u32 bytes length, the JSON, the bytes (raw, so
 * a DNS answer crosses as it is, not as base64 in JSON).
 */
export function socketLink(s: Socket): Link {
  const handlers: Array<(m: unknown, bin?: Buffer) => void> = [];
  const closers: Array<() => void> = [];
  let closed = false;
  let chunks: Buffer[] = [];
  let have = 0;
  /** Bytes the frame at the head needs in all (0: its header is not in yet). */
  let need = 0;
  const close = () => {
    if (closed) return;
    closed = true;
    for (const c of closers.splice(0)) c();
  };
  s.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    have += chunk.length;
    // A large frame arrives in many chunks: they are joined once it is whole, not on each one.
    if (have < 8 || (need > 0 && have < need)) return;
    let buf = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, have);
    let at = 0;
    while (buf.length - at >= 8) {
      const jl = buf.readUInt32BE(at);
      const bl = buf.readUInt32BE(at + 4);
      if (jl + bl > MAX_FRAME) return void s.destroy();
      if (buf.length - at < 8 + jl + bl) break;
      let m: unknown = null;
      try {
        m = JSON.parse(buf.toString('utf8', at + 8, at + 8 + jl));
      } catch {
        /* not ours: dropped */
      }
      const bin = bl > 0 ? Buffer.from(buf.subarray(at + 8 + jl, at + 8 + jl + bl)) : undefined;
      at += 8 + jl + bl;
      if (m !== null) for (const h of handlers) h(m, bin);
    }
    buf = buf.subarray(at);
    chunks = buf.length > 0 ? [buf] : [];
    have = buf.length;
    need = have >= 8 ? 8 + buf.readUInt32BE(0) + buf.readUInt32BE(4) : 0;
    if (need > 8 + MAX_FRAME) s.destroy();
  });
  s.on('error', () => {});
  s.on('close', close);
  return {
    send: (m, bin) => {
      if (closed || !s.writable) return;
      const json = Buffer.from(JSON.stringify(m));
      const head = Buffer.allocUnsafe(8);
      head.writeUInt32BE(json.length, 0);
      head.writeUInt32BE(bin?.length ?? 0, 4);
      s.cork();
      s.write(head);
      s.write(json);
      if (bin !== undefined && bin.length > 0) s.write(bin);
      s.uncork();
    },
    on: (cb) => void handlers.push(cb),
    onClose: (cb) => void (closed ? cb() : closers.push(cb)),
    get open() {
      return !closed;
    },
  };
}

/** A request's answer never came: what `ask` resolves with after its deadline, and the line it logs (once a second at most). */
interface Waiting {
  done: (m: Message | null, bin?: Buffer) => void;
  timer: NodeJS.Timeout;
}

/** Typed messages over a link, with requests that have a deadline. */
export class Channel<Out extends Message, In extends Message> {
  private nextId = 1;
  private readonly waiting = new Map<number, Waiting>();
  private lastLate = 0;

  constructor(
    readonly link: Link,
    handle: (m: In, bin?: Buffer) => void,
    /** Called (at most once a second) when a request went unanswered: the peer is slow or gone. */
    private readonly onLate?: (kind: string, waitedMs: number) => void,
  ) {
    link.on((raw, bin) => {
      if (raw === null || typeof raw !== 'object') return;
      const m = raw as In;
      if (typeof m.re === 'number') this.waiting.get(m.re)?.done(m, bin);
      else handle(m, bin);
    });
    link.onClose(() => {
      for (const w of [...this.waiting.values()]) w.done(null);
    });
  }

  get open(): boolean {
    return this.link.open;
  }

  send(m: Out): void {
    this.link.send(m);
  }

  /** Answers request `to` with `m` (the answer carries its id as `re`), and raw bytes beside it on a socket link. */
  reply(to: { id?: number }, m: Out, bin?: Buffer): void {
    this.link.send({ ...m, re: to.id }, bin);
  }

  /**
   * Sends the request `build(id)` and resolves with `read(answer)`, or `fallback` when no answer
   * comes within `ms` or the link closes first.
   */
  ask<T>(build: (id: number) => Out, ms: number, fallback: T, read: (m: In, bin?: Buffer) => T): Promise<T> {
    if (!this.link.open) return Promise.resolve(fallback);
    return new Promise((resolve) => {
      const id = this.nextId++;
      const request = build(id);
      const w: Waiting = {
        done: (m, bin) => {
          clearTimeout(w.timer);
          this.waiting.delete(id);
          resolve(m === null ? fallback : read(m as In, bin));
        },
        timer: setTimeout(() => {
          if (this.onLate && Date.now() - this.lastLate >= 1000) {
            this.lastLate = Date.now();
            this.onLate(request.egw, ms);
          }
          w.done(null);
        }, ms),
      };
      this.waiting.set(id, w);
      this.link.send(request);
    });
  }
}

/** Asks every channel at once; resolves with the answers that came in time (in channel order). */
export async function askAll<Out extends Message, In extends Message, T>(channels: Iterable<Channel<Out, In>>, build: (id: number) => Out, ms: number, read: (m: In) => T): Promise<T[]> {
  const got: Array<T | undefined> = await Promise.all([...channels].map((c) => c.ask<T | undefined>(build, ms, undefined, read)));
  return got.filter((x): x is T => x !== undefined);
}

/** One running instance of a supervised part. */
export interface Instance {
  /** Resolves with how it ended (exit code or signal, as text). */
  readonly exited: Promise<string>;
  /** Asks it to drain and stop within graceMs (its own shutdown message). */
  drain(graceMs: number): void;
  /** Stops it now. */
  kill(): void;
}

export interface SuperviseOptions<I extends Instance> {
  /** For log lines: "the API", "worker 1". */
  name: string;
  /** Log event name for an exit, e.g. api_thread_exit, worker_exit. */
  event: string;
  log: Logger;
  /** Starts one instance; resolves once it is up (rejects when it fails to start). */
  start(): Promise<I>;
  /** Told of every instance that came up after the first (a restart). */
  restarted?(i: I): void;
  /** Pause before a restart (ms). */
  restartMs?: number;
}

export interface Supervisor<I extends Instance> {
  /** The live instance, or null between an exit and its restart. */
  current(): I | null;
  /** Stops supervising and stops the instance: drain, then a kill after graceMs + 2 s. */
  stop(graceMs: number): Promise<void>;
}

/** Exits within this long of starting count as quick; more than MAX_QUICK in a row stop the restarts. */
const QUICK_MS = 60_000;
const MAX_QUICK = 5;

/**
 * Starts a part and keeps it running: resolves once the first instance is up (rejects, and
 * starts no other, when it cannot start). An instance that exits later is started again after
 * `restartMs`; after more than 5 exits in a row each within a minute of starting, it is not
 * (logged). A restart that fails to start counts as a quick exit.
 */
export async function supervise<I extends Instance>(o: SuperviseOptions<I>): Promise<Supervisor<I>> {
  let live: I | null = null;
  let stopping = false;
  let quick = 0;
  const watch = (i: I, born: number) => {
    void i.exited.then((how) => {
      if (live === i) live = null;
      if (stopping) return;
      quick = Date.now() - born < QUICK_MS ? quick + 1 : 0;
      if (quick > MAX_QUICK) {
        o.log.error({ event: o.event, how }, `${o.name} keeps exiting; not starting it again`);
        return;
      }
      o.log.error({ event: o.event, how }, `${o.name} exited (${how}); starting another`);
      setTimeout(() => void again(), o.restartMs ?? 200).unref();
    });
  };
  const again = async () => {
    if (stopping) return;
    const born = Date.now();
    try {
      const i = await o.start();
      if (stopping) return i.kill();
      live = i;
      watch(i, born);
      o.restarted?.(i);
    } catch (e) {
      o.log.error({ event: o.event, err: e }, `${o.name} could not be started again`);
      quick++;
      if (quick <= MAX_QUICK) setTimeout(() => void again(), o.restartMs ?? 200).unref();
    }
  };
  const first = await o.start();
  live = first;
  watch(first, Date.now());
  return {
    current: () => live,
    async stop(graceMs) {
      stopping = true;
      const i = live;
      if (i === null) return;
      i.drain(graceMs);
      const timer = setTimeout(() => i.kill(), graceMs + 2000);
      await i.exited;
      clearTimeout(timer);
    },
  };
}
