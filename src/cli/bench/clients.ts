/**
 * One operation per door, each classifying the gateway's answer as an allow, a deny or an
 * error (no decision: time-out, reset, upstream failure). Used by `bench` and bench/*.ts.
 */
import dgram from 'node:dgram';
import http from 'node:http';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import { SocksClient } from 'socks';
import type { Outcome } from './load.js';

export type Decision = { decision: 'allow' | 'deny' | 'error'; detail?: string; addresses?: string[] };

export interface Endpoint {
  host: string;
  port: number;
}

export interface Credentials {
  username: string;
  password: string;
}

/** Maps a decision to the outcome of a scenario expecting `expect`. */
export function judge(d: Decision, expect: 'allow' | 'deny'): Outcome {
  if (d.decision === 'error') return { outcome: 'error', detail: d.detail ?? 'error' };
  if (d.decision === expect) return { outcome: 'ok' };
  return { outcome: 'unexpected', detail: `${expect === 'allow' ? 'denied' : 'allowed'}${d.detail ? `: ${d.detail}` : ''}` };
}

function proxyAuthHeader(creds: Credentials | undefined): Record<string, string> {
  return creds ? { 'proxy-authorization': `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}` } : {};
}

/** `GET http://target/` through an HTTP proxy over kept-alive connections. 403 is a deny. */
export function httpProxyGet(proxy: Endpoint, target: Endpoint, opts: { agent: http.Agent; creds?: Credentials; timeoutMs?: number }): Promise<Decision> {
  const hostHeader = target.port === 80 ? target.host : `${target.host}:${target.port}`;
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: proxy.host,
        port: proxy.port,
        method: 'GET',
        path: `http://${hostHeader}/`,
        agent: opts.agent,
        headers: { host: hostHeader, ...proxyAuthHeader(opts.creds) },
        timeout: opts.timeoutMs ?? 5000,
      },
      (res) => {
        res.resume();
        res.on('end', () => {
          const s = res.statusCode ?? 0;
          if (s === 403) resolve({ decision: 'deny', detail: String(res.headers['x-egress-denied-reason'] ?? '403') });
          else if (s >= 500 || s === 407) resolve({ decision: 'error', detail: `HTTP ${s}` });
          else resolve({ decision: 'allow' });
        });
        res.on('error', (e) => resolve({ decision: 'error', detail: e.message }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('time-out')));
    req.on('error', (e) => resolve({ decision: 'error', detail: e.message }));
    req.end();
  });
}

/** Opens a CONNECT tunnel and closes it as soon as the proxy answers. 200 allows, 403 denies. */
export function connectOnce(proxy: Endpoint, target: Endpoint, opts: { creds?: Credentials; timeoutMs?: number } = {}): Promise<Decision> {
  return new Promise((resolve) => {
    const sock = net.connect(proxy.port, proxy.host);
    let buf = '';
    let done = false;
    const finish = (d: Decision) => {
      if (done) return;
      done = true;
      sock.destroy();
      resolve(d);
    };
    sock.setTimeout(opts.timeoutMs ?? 5000, () => finish({ decision: 'error', detail: 'time-out' }));
    sock.on('error', (e) => finish({ decision: 'error', detail: e.message }));
    sock.on('close', () => finish({ decision: 'error', detail: 'closed before a response' }));
    sock.on('connect', () => {
      const auth = proxyAuthHeader(opts.creds)['proxy-authorization'];
      sock.write(`CONNECT ${target.host}:${target.port} HTTP/1.1\r\nHost: ${target.host}:${target.port}\r\n${auth ? `Proxy-Authorization: ${auth}\r\n` : ''}\r\n`);
    });
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      const end = buf.indexOf('\r\n');
      if (end === -1) return;
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(buf.slice(0, end));
      const s = m ? Number(m[1]) : 0;
      if (s === 200) finish({ decision: 'allow' });
      else if (s === 403) finish({ decision: 'deny', detail: '403' });
      else finish({ decision: 'error', detail: `CONNECT answered ${s || JSON.stringify(buf.slice(0, 40))}` });
    });
  });
}

/** SOCKS5 CONNECT, closed as soon as the reply arrives. Reply 0x00 allows, 0x02 denies. */
export async function socksOnce(proxy: Endpoint, target: Endpoint, opts: { creds?: Credentials; timeoutMs?: number } = {}): Promise<Decision> {
  try {
    const { socket } = await SocksClient.createConnection({
      proxy: { host: proxy.host, port: proxy.port, type: 5, ...(opts.creds ? { userId: opts.creds.username, password: opts.creds.password } : {}) },
      command: 'connect',
      destination: { host: target.host, port: target.port },
      timeout: opts.timeoutMs ?? 5000,
    });
    socket.destroy();
    return { decision: 'allow' };
  } catch (e) {
    const msg = (e as Error).message;
    if (/NotAllowed/.test(msg)) return { decision: 'deny', detail: 'reply 0x02' };
    return { decision: 'error', detail: msg };
  }
}

function hasPolicyEde(p: dnsPacket.Packet): boolean {
  for (const a of p.additionals ?? []) {
    if (a.type !== 'OPT') continue;
    for (const o of (a as { options?: Array<{ code: number; data?: Buffer }> }).options ?? []) {
      if (o.code === 15 && o.data !== undefined && o.data.length >= 2) {
        const info = o.data.readUInt16BE(0);
        if (info === 15 || info === 18) return true;
      }
    }
  }
  return false;
}

/** A UDP DNS client sharing one socket among many in-flight queries (matched by id). */
export class DnsClient {
  private readonly sock: dgram.Socket;
  private readonly pending = new Map<number, (d: Decision) => void>();
  private nextId = Math.floor(Math.random() * 65536);

  constructor(
    private readonly server: Endpoint,
    private readonly timeoutMs = 3000,
  ) {
    this.sock = dgram.createSocket(net.isIPv6(server.host) ? 'udp6' : 'udp4');
    this.sock.on('error', () => {});
    this.sock.on('message', (msg) => {
      let p: dnsPacket.Packet;
      try {
        p = dnsPacket.decode(msg);
      } catch {
        return;
      }
      const cb = this.pending.get(p.id ?? -1);
      if (!cb) return;
      this.pending.delete(p.id!);
      const rcode = (p as { rcode?: string }).rcode ?? 'NOERROR';
      if (rcode === 'NOERROR') cb({ decision: 'allow', addresses: (p.answers ?? []).filter((a) => a.type === 'A' || a.type === 'AAAA').map((a) => String((a as { data?: unknown }).data)) });
      else if (rcode !== 'NXDOMAIN' && rcode !== 'REFUSED') cb({ decision: 'error', detail: rcode });
      // A policy denial carries Extended DNS Error 15 (Blocked) or 18 (Prohibited); a REFUSED
      // without one is the rate limiter (or another refusal), not a decision.
      else if (hasPolicyEde(p)) cb({ decision: 'deny', detail: rcode });
      else cb({ decision: 'error', detail: rcode === 'REFUSED' ? 'REFUSED without EDE (rate-limited)' : 'NXDOMAIN without EDE (not a policy denial)' });
    });
  }

  query(name: string, type: 'A' | 'AAAA' = 'A'): Promise<Decision> {
    let id = this.nextId;
    for (let i = 0; i < 65536 && this.pending.has(id); i++) id = (id + 1) & 0xffff;
    this.nextId = (id + 1) & 0xffff;
    // With EDNS, so that denials carry their Extended DNS Error.
    const msg = dnsPacket.encode({
      type: 'query',
      id,
      flags: dnsPacket.RECURSION_DESIRED,
      questions: [{ type, name, class: 'IN' }],
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232 } as unknown as dnsPacket.Answer],
    });
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve({ decision: 'error', detail: 'time-out' });
      }, this.timeoutMs);
      this.pending.set(id, (d) => {
        clearTimeout(timer);
        resolve(d);
      });
      this.sock.send(msg, this.server.port, this.server.host, (err) => {
        if (err && this.pending.delete(id)) {
          clearTimeout(timer);
          resolve({ decision: 'error', detail: err.message });
        }
      });
    });
  }

  close(): void {
    this.sock.close();
  }
}
