/**
 * Idle keep-alive connections to origins, keyed by the exact address:port that was
 * checked (so a pooled socket is only ever reused for the same destination address).
 * LIFO per key, bounded per key, in all and per devbox (each idle socket is counted to
 * the devbox whose request opened it: one devbox cannot park the gateway's descriptors),
 * each closed after `idleMs` unused or when the origin closes it. One pool serves every
 * HTTP door.
 */
import type net from 'node:net';
import { FairShare } from './fair-share.js';

class Idle {
  constructor(
    readonly pool: UpstreamPool,
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
  private readonly idle = new Map<string, Idle[]>();
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

  /** Keeps a socket whose last response ended cleanly, counted to `tenant` (else destroys it). */
  give(address: string, port: number, sock: net.Socket, tenant: string): void {
    if (sock.destroyed || sock.readyState !== 'open') {
      sock.destroy();
      return;
    }
    const key = `${address}:${port}`;
    const list = this.idle.get(key);
    if ((list !== undefined && list.length >= this.maxPerKey) || !this.share.take(tenant)) {
      sock.destroy();
      return;
    }
    const e = new Idle(this, key, sock, tenant);
    sock.on('data', e.drop);
    sock.on('end', e.drop);
    sock.on('error', e.drop);
    sock.on('close', e.drop);
    // setTimeout(ms, cb) would add a listener per call: one listener, removed in detach.
    sock.on('timeout', e.drop);
    sock.setTimeout(this.idleMs);
    if (sock.isPaused()) sock.resume();
    if (list === undefined) this.idle.set(key, [e]);
    else list.push(e);
  }

  forget(e: Idle): void {
    const list = this.idle.get(e.key);
    if (list === undefined) return;
    const i = list.indexOf(e);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.idle.delete(e.key);
    this.detach(e);
  }

  private detach(e: Idle): void {
    if (e.counted) {
      e.counted = false;
      this.share.release(e.tenant);
    }
    e.sock.off('data', e.drop);
    e.sock.off('end', e.drop);
    e.sock.off('error', e.drop);
    e.sock.off('close', e.drop);
    e.sock.off('timeout', e.drop);
    e.sock.setTimeout(0);
  }

  /** Idle sockets held (for tests and shutdown). */
  get size(): number {
    let n = 0;
    for (const l of this.idle.values()) n += l.length;
    return n;
  }

  close(): void {
    for (const list of this.idle.values()) for (const e of list.splice(0)) {
      this.detach(e);
      e.sock.destroy();
    }
    this.idle.clear();
  }
}
