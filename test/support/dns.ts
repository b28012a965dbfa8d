/**
 * DNS door test harness: a test upstream, the whole gateway on loopback, a policy and a
 * devbox per source address, and clients: real `dig` (asynchronously: the gateway runs
 * in this process) and raw UDP/TCP sockets for what dig will not send.
 */
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import { type DnsUpstream, type DnsUpstreamOptions, startDnsUpstream } from './dns-upstream.js';
import { type TestGateway, startTestGateway } from './gateway.js';

export interface DnsSetup {
  up: DnsUpstream;
  g: TestGateway;
  port: number;
  /** Devbox ids by source address. */
  devboxes: Record<string, string>;
  /** Policy ids by source address. */
  policies: Record<string, string>;
  dig(source: string, ...args: string[]): Promise<string>;
  close(): Promise<void>;
}

export interface SetupOptions {
  upstream: DnsUpstreamOptions;
  /** source address → allowed_hostnames (one policy and one devbox each). */
  devboxes: Record<string, string[]>;
  flags?: Record<string, string | string[]>;
  /** Upstreams (HOST:PORT) tried before the test upstream. */
  upstreamsBefore?: string[];
}

export async function setupDns(opts: SetupOptions): Promise<DnsSetup> {
  const up = await startDnsUpstream(opts.upstream);
  const flags = { ...opts.flags };
  if (opts.upstreamsBefore) flags['upstream-dns'] = [[...opts.upstreamsBefore, `127.0.0.1:${up.port}`].join(',')];
  const g = await startTestGateway({ upstreamDnsPort: up.port, flags });
  const devboxes: Record<string, string> = {};
  const policies: Record<string, string> = {};
  for (const [addr, names] of Object.entries(opts.devboxes)) {
    const pol = await g.api.policy(`dns-${addr}`, { allowed_hostnames: names });
    policies[addr] = pol;
    devboxes[addr] = (await g.api.devbox(pol, [addr])).id;
  }
  const port = g.addr('dns').port;
  return {
    up,
    g,
    port,
    devboxes,
    policies,
    dig: (source, ...args) => dig(port, source, ...args),
    close: async () => {
      await g.close();
      await up.close();
    },
  };
}

/** Runs dig against the door from `source`; resolves with its output even when dig fails. */
export function dig(port: number, source: string, ...args: string[]): Promise<string> {
  return new Promise((resolve) => {
    execFile('dig', ['@127.0.0.1', '-p', String(port), '-b', source, '+tries=1', '+time=2', ...args], { timeout: 10_000 }, (err, stdout, stderr) => {
      resolve(`${stdout}${stderr}${err && !stdout ? `\n(dig failed: ${err.message})` : ''}`);
    });
  });
}

/** The status word of a dig answer (NOERROR, NXDOMAIN, REFUSED…), or 'NO_ANSWER'. */
export function status(out: string): string {
  return /status: ([A-Z]+)/.exec(out)?.[1] ?? 'NO_ANSWER';
}

/** The answer section's records as [name, ttl, type, data] tuples. */
export function answers(out: string): Array<{ name: string; ttl: number; type: string; data: string }> {
  const section = /;; ANSWER SECTION:\n([\s\S]*?)\n\n/.exec(out)?.[1] ?? '';
  return section
    .split('\n')
    .filter((l) => l.trim() && !l.startsWith(';'))
    .map((l) => {
      const [name, ttl, , type, ...data] = l.split(/\s+/);
      return { name: name!, ttl: Number(ttl), type: type!, data: data.join(' ') };
    });
}

/** Sends one UDP datagram from `source` and waits for a reply (null on time-out). */
export function udpExchange(port: number, source: string, msg: Buffer, timeoutMs = 500): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const timer = setTimeout(() => finish(null), timeoutMs);
    const finish = (b: Buffer | null) => {
      clearTimeout(timer);
      s.close();
      resolve(b);
    };
    s.on('error', () => finish(null));
    s.on('message', (m) => finish(m));
    s.bind(0, source, () => s.send(msg, port, '127.0.0.1'));
  });
}

/**
 * Many UDP queries from one socket; resolves with the replies as soon as every query has one,
 * or with those received by `waitMs` (a deadline: only a test whose queries go unanswered waits it out).
 */
export function udpBurst(port: number, source: string, msgs: Buffer[], waitMs = 800): Promise<Buffer[]> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const got: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    const finish = () => {
      clearTimeout(timer);
      s.close();
      resolve(got);
    };
    s.on('message', (m) => {
      got.push(m);
      if (got.length === msgs.length) finish();
    });
    s.bind(0, source, () => {
      for (const m of msgs) s.send(m, port, '127.0.0.1');
      timer = setTimeout(finish, waitMs);
    });
  });
}

export function query(name: string, type: dnsPacket.RecordType | string = 'A', opts: { id?: number; edns?: boolean } = {}): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id: opts.id ?? Math.floor(Math.random() * 65536),
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type: type as dnsPacket.RecordType, class: 'IN' }],
    ...(opts.edns ? { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: 0, options: [] } as unknown as dnsPacket.Answer] } : {}),
  });
}

export function decode(b: Buffer): dnsPacket.Packet & { rcode?: string; flag_tc?: boolean } {
  return dnsPacket.decode(b) as dnsPacket.Packet & { rcode?: string; flag_tc?: boolean };
}

export function frame(msg: Buffer): Buffer {
  const out = Buffer.alloc(2 + msg.length);
  out.writeUInt16BE(msg.length, 0);
  msg.copy(out, 2);
  return out;
}

/** The number of whole length-prefixed frames in `chunks`, read as one stream. */
function countFrames(chunks: Buffer[]): number {
  const all = Buffer.concat(chunks);
  let n = 0;
  for (let at = 0; at + 2 <= all.length && at + 2 + all.readUInt16BE(at) <= all.length; at += 2 + all.readUInt16BE(at)) n++;
  return n;
}

/**
 * Opens a TCP connection from `source`, writes `data`, collects framed replies until the server
 * closes, every whole frame sent has a reply, or `waitMs` passes (a deadline, not a pause).
 */
export function tcpSession(port: number, source: string, data: Buffer[], opts: { waitMs?: number; end?: boolean } = {}): Promise<{ replies: Buffer[]; closedByServer: boolean }> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port, localAddress: source });
    let buf = Buffer.alloc(0);
    const replies: Buffer[] = [];
    let closedByServer = false;
    let done = false;
    const expected = countFrames(data);
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ replies, closedByServer });
    };
    const timer = setTimeout(finish, opts.waitMs ?? 800);
    sock.on('connect', () => {
      for (const d of data) sock.write(d);
      if (opts.end) sock.end();
    });
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        replies.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
      }
      if (expected > 0 && replies.length >= expected) finish();
    });
    sock.on('error', () => {});
    sock.on('close', () => {
      closedByServer = true;
      finish();
    });
  });
}

export { sleep } from './wait.js';
