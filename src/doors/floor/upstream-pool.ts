/**
 * Idle keep-alive connections to origins, keyed by the exact address:port that was
 * checked (so a pooled socket is only ever reused for the same destination address).
 * LIFO per key, bounded per key, in all and per devbox (each idle socket is counted to
 * the devbox whose request opened it: one devbox cannot park the gateway's descriptors),
 * each closed after `idleMs` unused or when the origin closes it. One pool serves every
 * HTTP door.
 *
 * The pool adds no listeners of its own: its user keeps one set on each origin socket for
 * the socket's life (adding and removing five listeners per request cost more than the
 * request's own parsing) and, while the socket is idle here, calls the entry's `drop()` on
 * any event of it ('data', 'end', 'error', 'close', 'timeout').
 */
import type net from 'node:net';
import { FairShare } from './fair-share.js';

export class IdleEntry {
  constructor(
    private readonly pool: UpstreamPool,
    readonly key: string,
    readonly sock: net.Socket,
    readonly tenant: string,
  ) {}

  counted = true;

  /** The origin closed, errored, sent something unasked, or the socket sat unused too long. */
  readonly drop = (): void => {
    this.pool.forget(this);
    this.sock.destroy();
  };
}

export class UpstreamPool {
  private readonly idle = new Map<string, IdleEntry[]>();
  readonly share: FairShare;

  constructor(
    private readonly maxPerKey: number,
    private readonly idleMs: number,
    /** Idle sockets in all, and per devbox. */
    maxIdle = 1024,
    maxPerTenant = 32,
  ) {
    this.share = new FairShare('upstream_idle', maxIdle, maxPerTenant);
  }

  /** A live idle socket to address:port, or null. */
  take(address: string, port: number): net.Socket | null {
    const list = this.idle.get(`${address}:${port}`);
    if (list === undefined) return null;
    for (;;) {
      const e = list.pop();
      if (e === undefined) return null;
      this.detach(e);
      if (!e.sock.destroyed && e.sock.readyState === 'open') return e.sock;
      e.sock.destroy();
    }
  }

  /**
   * Keeps a socket whose last response ended cleanly, counted to `tenant`; null when it is
   * not kept (then destroyed). The caller routes the socket's events to the entry's drop().
   */
  give(address: string, port: number, sock: net.Socket, tenant: string): IdleEntry | null {
    if (sock.destroyed || sock.readyState !== 'open') {
      sock.destroy();
      return null;
    }
    const key = `${address}:${port}`;
    const list = this.idle.get(key);
    if ((list !== undefined && list.length >= this.maxPerKey) || !this.share.take(tenant)) {
      sock.destroy();
      return null;
    }
    const e = new IdleEntry(this, key, sock, tenant);
    sock.setTimeout(this.idleMs);
    if (sock.isPaused()) sock.resume();
    if (list === undefined) this.idle.set(key, [e]);
    else list.push(e);
    return e;
  }

  forget(e: IdleEntry): void {
    const list = this.idle.get(e.key);
    if (list === undefined) return;
    const i = list.indexOf(e);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.idle.delete(e.key);
    this.detach(e);
  }

  /** Out of the pool: no longer counted (the taker re-arms the socket's idle time-out). */
  private detach(e: IdleEntry): void {
    if (e.counted) {
      e.counted = false;
      this.share.release(e.tenant);
    }
  }

  /** Idle sockets held (for tests and shutdown). */
  get size(): number {
    let n = 0;
    for (const l of this.idle.values()) n += l.length;
    return n;
  }

  close(): void {
    for (const list of this.idle.values())
      for (const e of list.splice(0)) {
        this.detach(e);
        e.sock.destroy();
      }
    this.idle.clear();
  }
}
