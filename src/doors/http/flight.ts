/**
 * The HTTP core both forwarding paths share (the raw front, front.ts + origin.ts, and the
 * node:http path, node-forward.ts): what happens to one forwarded request between its
 * decision and its end. The refusal when admission fails or the devbox is at its cap, the
 * tracker registration (a policy change that now denies the request cuts it), the bytes
 * counted on the origin socket, the 502/504 answer when the origin fails, and one log line.
 * Each path only renders a `Refusal` in its own way (raw bytes or a ServerResponse).
 */
import type net from 'node:net';
import type { DoorContext } from '../floor/context.js';
import type { TunnelSetting } from '../floor/tunnel.js';

/** What the HTTP doors (proxy and transparent) use of the gateway. */
export type HttpContext = DoorContext<'config' | 'engine' | 'gate' | 'tracker' | 'log' | 'sourceLimit' | 'upstreamPool', TunnelSetting | 'maxHeaderBytes' | 'responseTimeoutMs' | 'transparentHttpUpstreamPort'>;
import type { Admission } from '../floor/gate.js';
import type { TrackedConnection } from '../floor/tracker.js';
import type { Decision, Door } from '../../policy/decision.js';
import type { Identity } from '../../policy/engine.js';
import { bytesTotal } from '../../metrics.js';

/** An answer the gateway gives in place of the origin's: a policy denial or an error. */
export type Refusal = { status: 403; decision: Decision } | { status: 502 | 503 | 504; message: string };

export const TOO_MANY: Refusal = { status: 503, message: 'too many open connections for this devbox' };

/** A refused admission: 403 for a denial, 502 when the name does not resolve. */
export function admissionRefusal(a: Exclude<Admission, { ok: true }>, host: string): Refusal {
  return a.error === 'denied' ? { status: 403, decision: a.decision } : { status: 502, message: `cannot resolve ${host}: ${a.detail}` };
}

/** The origin failed before its response head: 504 when it timed out, else 502. */
export function upstreamFailure(host: string, port: number, code: string, message?: string): Refusal {
  const status = code === 'ETIMEDOUT' || code === 'response_timeout' ? 504 : 502;
  return { status, message: `upstream ${host}:${port}: ${message ?? code}` };
}

/** Per door: the byte counters (prom-client children made once) and the flights' factory. */
export class HttpCore {
  readonly bytesOut: { inc(v: number): void };
  readonly bytesIn: { inc(v: number): void };

  constructor(
    readonly ctx: DoorContext<'tracker' | 'gate'>,
    readonly door: Door,
  ) {
    this.bytesOut = bytesTotal.labels(door, 'out');
    this.bytesIn = bytesTotal.labels(door, 'in');
  }

  /**
   * Registers an admitted request with the tracker; `cut` ends both sides when a policy
   * change now denies it. Null when the devbox is at its connection cap (answer TOO_MANY).
   */
  open(identity: Identity, host: string, port: number, decision: Decision, cut: () => void): HttpFlight | null {
    const f = new HttpFlight(this, identity, host, port, decision, cut);
    return this.ctx.tracker.add(f) ? f : null;
  }
}

/** One forwarded request in flight: tracked, counted, and logged once when it ends. */
export class HttpFlight implements TrackedConnection {
  readonly door: Door;
  readonly started = performance.now();
  private sock: net.Socket | null = null;
  private outBase = 0;
  private inBase = 0;
  done = false;

  constructor(
    private readonly core: HttpCore,
    readonly identity: Identity,
    readonly host: string,
    readonly port: number,
    readonly decision: Decision,
    private readonly cut: () => void,
  ) {
    this.door = core.door;
  }

  close(): void {
    this.cut();
  }

  /** The origin socket carrying the request (a pooled one: only bytes from here on count). */
  attach(sock: net.Socket): void {
    this.sock = sock;
    this.outBase = sock.bytesWritten;
    this.inBase = sock.bytesRead;
  }

  /** True while nothing came back from the origin on this request. */
  get silent(): boolean {
    return this.sock === null || this.sock.connecting || this.sock.bytesRead === this.inBase;
  }

  /** Unregisters, counts the bytes and logs the request, once. */
  finish(error?: string): void {
    if (this.done) return;
    this.done = true;
    const { ctx } = this.core;
    ctx.tracker.remove(this);
    let out = 0;
    let inn = 0;
    const s = this.sock;
    if (s !== null) {
      out = s.bytesWritten - this.outBase;
      inn = s.bytesRead - this.inBase;
      if (out > 0) this.core.bytesOut.inc(out);
      if (inn > 0) this.core.bytesIn.inc(inn);
    }
    ctx.gate.logConnection(this.identity, this.door, this.decision, this.port, out, inn, performance.now() - this.started, error);
  }
}
