/**
 * The client the door and the gateway's resolver use to ask the configured upstream
 * servers: a few long-lived UDP sockets (random ports) with 16-bit ids matched against
 * the sender and the question, a per-attempt time-out, the next upstream on time-out or
 * SERVFAIL/REFUSED (a failure that remains is cached by the resolver, RFC 9520), TCP
 * when an answer comes back truncated, and one upstream query for any number of
 * identical questions in flight.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { randomFillSync } from 'node:crypto';
import type { HostPort } from '../config.js';
import { RCODE, TC, buildQuery } from './wire.js';
import { dnsMetrics } from './metrics.js';
import { literalLookup } from './literal-lookup.js';

export class UpstreamError extends Error {
  constructor(
    readonly kind: 'timeout' | 'unreachable' | 'no_upstreams' | 'closed',
    message: string,
  ) {
    super(message);
  }
}

export interface UpstreamAnswer {
  bytes: Buffer;
  transport: 'udp' | 'tcp';
  upstream: HostPort;
}

export interface UpstreamOptions {
  /** Time-out of one attempt (ms). */
  timeoutMs?: number;
  /** Attempts in all, cycling through the upstreams (default: max(2, upstreams)). */
  attempts?: number;
  /** UDP sockets per address family. */
  sockets?: number;
  /** Largest TCP answer accepted. */
  maxTcpBytes?: number;
}

interface Pending {
  id: number;
  sock: SocketSlot;
  query: Buffer;
  upstream: HostPort;
  deadline: number;
  seq: number;
  sentAt: number;
  resolve: (b: Buffer | null) => void;
}

interface SocketSlot {
  sock: dgram.Socket;
  pending: Map<number, Pending>;
  ready: Promise<void>;
  broken: boolean;
}

const SWEEP_MS = 25;

export class UpstreamClient {
  private readonly timeoutMs: number;
  private readonly attempts: number;
  private readonly nSockets: number;
  private readonly maxTcpBytes: number;
  private readonly slots: { udp4: SocketSlot[]; udp6: SocketSlot[] } = { udp4: [], udp6: [] };
  private rr = 0;
  private seq = 0;
  /** Every outstanding UDP attempt, in send order (so the sweep stops at the first live one). */
  private readonly bySeq = new Map<number, Pending>();
  private readonly inflight = new Map<string, Promise<UpstreamAnswer>>();
  private sweeper: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly tcpSockets = new Set<net.Socket>();

  constructor(
    readonly upstreams: readonly HostPort[],
    opts: UpstreamOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? 1000;
    this.attempts = opts.attempts ?? Math.max(2, upstreams.length);
    this.nSockets = opts.sockets ?? 4;
    this.maxTcpBytes = opts.maxTcpBytes ?? 65535;
  }

  /**
   * Asks the upstreams for name/type/class (name lower-case, valid). Identical questions
   * in flight share one upstream query. Rejects with UpstreamError when none answered.
   */
  query(name: string, qtype: number, qclass: number): Promise<UpstreamAnswer> {
    const key = `${name}/${qtype}/${qclass}`;
    let p = this.inflight.get(key);
    if (p === undefined) {
      p = this.run(name, qtype, qclass);
      this.inflight.set(key, p);
      const done = () => this.inflight.delete(key);
      p.then(done, done);
    }
    return p;
  }

  private async run(name: string, qtype: number, qclass: number): Promise<UpstreamAnswer> {
    if (this.closed) throw new UpstreamError('closed', 'upstream client closed');
    if (this.upstreams.length === 0) throw new UpstreamError('no_upstreams', 'no upstream DNS servers configured');
    let last: UpstreamAnswer | null = null;
    let lastFailed = '';
    for (let attempt = 0; attempt < this.attempts; attempt++) {
      const up = this.upstreams[attempt % this.upstreams.length]!;
      const started = performance.now();
      let bytes = await this.udpAttempt(up, name, qtype, qclass);
      let transport: 'udp' | 'tcp' = 'udp';
      if (bytes !== null && bytes.length >= 4 && (bytes.readUInt16BE(2) & TC) !== 0) {
        transport = 'tcp';
        bytes = await this.tcpAttempt(up, name, qtype, qclass).catch(() => null);
      }
      const label = bytes === null || (bytes[3]! & 0xf) !== 0 ? `${up.host}:${up.port}` : '';
      if (bytes === null) {
        dnsMetrics.upstreamError(label, transport === 'tcp' ? 'tcp_failed' : 'timeout');
        lastFailed = label;
        continue;
      }
      dnsMetrics.upstreamLatency(transport, (performance.now() - started) / 1000);
      const answer: UpstreamAnswer = { bytes, transport, upstream: up };
      const rcode = bytes[3]! & 0xf;
      // A server that refused or failed answers the same again: try another one, if any
      // is left (a silent one may have lost the datagram, so time-outs retry above).
      if ((rcode === RCODE.SERVFAIL || rcode === RCODE.REFUSED) && attempt + 1 < Math.min(this.attempts, this.upstreams.length)) {
        dnsMetrics.upstreamError(label, rcode === RCODE.SERVFAIL ? 'servfail' : 'refused');
        last = answer;
        continue;
      }
      return answer;
    }
    if (last !== null) return last;
    throw new UpstreamError('timeout', `no answer for ${name} after ${this.attempts} attempts (last: ${lastFailed})`);
  }

  // ── UDP ─────────────────────────────────────────────────────────────────────

  private slot(family: 'udp4' | 'udp6'): SocketSlot {
    const list = this.slots[family];
    if (list.length < this.nSockets) {
      const s = this.openSocket(family);
      list.push(s);
      return s;
    }
    let s = list[this.rr++ % list.length]!;
    if (s.broken) {
      const i = list.indexOf(s);
      s = this.openSocket(family);
      list[i] = s;
    }
    return s;
  }

  private openSocket(family: 'udp4' | 'udp6'): SocketSlot {
    const sock = dgram.createSocket({ type: family, recvBufferSize: 4 << 20, sendBufferSize: 4 << 20, lookup: literalLookup });
    const slot: SocketSlot = { sock, pending: new Map(), ready: Promise.resolve(), broken: false };
    sock.on('error', () => {
      slot.broken = true;
      for (const p of slot.pending.values()) this.finish(p, null);
      try {
        sock.close();
      } catch {
        /* already closed */
      }
    });
    sock.on('message', (msg, rinfo) => this.onMessage(slot, msg, rinfo));
    slot.ready = new Promise<void>((resolve) => {
      // exclusive: in a DNS worker (cluster), a port-0 bind would otherwise be one socket
      // shared by every worker, and answers would reach whichever reads first.
      sock.bind({ port: 0, exclusive: true }, () => {
        sock.unref();
        try {
          sock.setRecvBufferSize(4 << 20);
          sock.setSendBufferSize(4 << 20);
        } catch {
          /* kernel limits */
        }
        resolve();
      });
    });
    return slot;
  }

  private udpAttempt(up: HostPort, name: string, qtype: number, qclass: number): Promise<Buffer | null> {
    const family = net.isIPv6(up.host) ? 'udp6' : 'udp4';
    const slot = this.slot(family);
    let id = randomId();
    for (let i = 0; slot.pending.has(id) && i < 64; i++) id = randomId();
    if (slot.pending.has(id)) return Promise.resolve(null);
    const query = buildQuery(id, name, qtype, qclass);
    return new Promise<Buffer | null>((resolve) => {
      const now = performance.now();
      const p: Pending = { id, sock: slot, query, upstream: up, deadline: now + this.timeoutMs, seq: ++this.seq, sentAt: now, resolve };
      slot.pending.set(id, p);
      this.bySeq.set(p.seq, p);
      this.ensureSweeper();
      const send = () =>
        slot.sock.send(query, up.port, up.host, (err) => {
          if (err) this.finish(p, null);
        });
      try {
        send();
      } catch {
        // not bound yet
        slot.ready.then(() => {
          try {
            send();
          } catch {
            this.finish(p, null);
          }
        });
      }
    });
  }

  private onMessage(slot: SocketSlot, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (msg.length < 12) return;
    const p = slot.pending.get(msg.readUInt16BE(0));
    if (p === undefined) return;
    // Only the server we asked, answering the question we asked (case-insensitively).
    if (rinfo.port !== p.upstream.port || !sameHost(rinfo.address, p.upstream.host)) return;
    if ((msg[2]! & 0x80) === 0 || !sameQuestion(p.query, msg)) return;
    this.finish(p, msg);
  }

  private finish(p: Pending, msg: Buffer | null): void {
    if (p.sock.pending.get(p.id) !== p) return;
    p.sock.pending.delete(p.id);
    this.bySeq.delete(p.seq);
    p.resolve(msg);
  }

  private ensureSweeper(): void {
    if (this.sweeper !== null) return;
    this.sweeper = setInterval(() => {
      const now = performance.now();
      for (const p of this.bySeq.values()) {
        if (p.deadline > now) break;
        this.finish(p, null);
      }
      if (this.bySeq.size === 0 && this.sweeper !== null) {
        clearInterval(this.sweeper);
        this.sweeper = null;
      }
    }, SWEEP_MS);
    this.sweeper.unref();
  }

  // ── TCP ─────────────────────────────────────────────────────────────────────

  private tcpAttempt(up: HostPort, name: string, qtype: number, qclass: number): Promise<Buffer | null> {
    const id = randomId();
    const query = buildQuery(id, name, qtype, qclass);
    return new Promise<Buffer | null>((resolve) => {
      const sock = net.connect({ host: up.host, port: up.port });
      this.tcpSockets.add(sock);
      let buf = Buffer.alloc(0);
      let settled = false;
      const done = (v: Buffer | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.tcpSockets.delete(sock);
        sock.destroy();
        resolve(v);
      };
      const timer = setTimeout(() => done(null), this.timeoutMs * 2);
      sock.on('error', () => done(null));
      sock.on('close', () => done(null));
      sock.on('connect', () => {
        const framed = Buffer.allocUnsafe(2 + query.length);
        framed.writeUInt16BE(query.length, 0);
        query.copy(framed, 2);
        sock.write(framed);
      });
      sock.on('data', (d) => {
        buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
        if (buf.length > this.maxTcpBytes + 2) return done(null);
        while (buf.length >= 2) {
          const len = buf.readUInt16BE(0);
          if (buf.length < 2 + len) return;
          const msg = Buffer.from(buf.subarray(2, 2 + len));
          buf = buf.subarray(2 + len);
          if (len >= 12 && msg.readUInt16BE(0) === id && (msg[2]! & 0x80) !== 0 && sameQuestion(query, msg)) return done(msg);
        }
      });
    });
  }

  close(): void {
    this.closed = true;
    if (this.sweeper !== null) clearInterval(this.sweeper);
    this.sweeper = null;
    for (const p of [...this.bySeq.values()]) this.finish(p, null);
    for (const list of [this.slots.udp4, this.slots.udp6]) {
      for (const s of list) {
        try {
          s.sock.close();
        } catch {
          /* already closed */
        }
      }
      list.length = 0;
    }
    for (const s of this.tcpSockets) s.destroy();
    this.tcpSockets.clear();
  }
}

const randomPool = Buffer.allocUnsafe(4096);
let randomAt = randomPool.length;
/** Unpredictable 16-bit ids, drawn from a refilled pool of CSPRNG bytes. */
function randomId(): number {
  if (randomAt >= randomPool.length) {
    randomFillSync(randomPool);
    randomAt = 0;
  }
  const id = randomPool.readUInt16BE(randomAt);
  randomAt += 2;
  return id;
}

function sameHost(a: string, b: string): boolean {
  if (a === b) return true;
  if (b === 'localhost') return a === '127.0.0.1' || a === '::1';
  return a.startsWith('::ffff:') && a.slice(7) === b;
}

/** The answer's question equals the query's (names compared ignoring ASCII case). */
function sameQuestion(query: Buffer, answer: Buffer): boolean {
  if (answer.readUInt16BE(4) !== 1) return false;
  // The query is ours: header, one question, then an 11-byte OPT.
  const qEnd = query.length - 11;
  if (answer.length < qEnd) return false;
  // Label length bytes are at most 63, so lower-casing 65-90 only touches letters.
  for (let i = 12; i < qEnd - 4; i++) {
    let a = answer[i]!;
    if (a >= 65 && a <= 90) a += 32;
    if (a !== query[i]) return false;
  }
  for (let i = qEnd - 4; i < qEnd; i++) if (answer[i] !== query[i]) return false;
  return true;
}
