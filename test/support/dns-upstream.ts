/**
 * A small authoritative DNS server for tests (UDP + TCP on 127.0.0.1, port 0): answers
 * the records it is given, NXDOMAIN otherwise, and counts every query it sees so tests
 * can prove the gateway did (or did not) ask upstream. Shared by every door's tests.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';

export interface TestRecord {
  type: string;
  data: unknown;
  ttl?: number;
}

export interface DnsUpstreamOptions {
  /** name (lower-case, no trailing dot) → records. */
  records: Record<string, TestRecord[]>;
  /** Names whose UDP answers come back with the TC bit and no answers (to force TCP). */
  truncateUdp?: Set<string>;
  /** Names whose UDP queries are counted but never answered (to force a time-out). */
  dropUdp?: Set<string>;
  /**
   * An rcode to answer a question with instead of its records (e.g. 5, REFUSED, for
   * AAAA only), or undefined to answer normally. `type` as dns-packet names it ('AAAA').
   */
  rcodeFor?: (name: string, type: string) => number | undefined;
  /** When set, NXDOMAIN and NODATA answers carry this SOA in authority (RFC 2308 negative caching). */
  negativeSoa?: { ttl: number; minimum: number };
  /** Answers built by the test itself (e.g. thousands of records for any name of a zone); undefined: as usual. */
  rawAnswer?: (query: Buffer, name: string, type: string) => Buffer | undefined;
}

function udpName(p: dnsPacket.Packet): string {
  return (p.questions?.[0]?.name ?? '').toLowerCase().replace(/\.$/, '');
}

export interface DnsUpstream {
  port: number;
  address: string;
  /** Every question seen, in order, as `name/TYPE/udp|tcp`. */
  queries: string[];
  countFor(name: string): number;
  setRecords(name: string, records: TestRecord[]): void;
  close(): Promise<void>;
}

function answer(query: dnsPacket.Packet, opts: DnsUpstreamOptions, transport: 'udp' | 'tcp'): Buffer {
  const q = query.questions?.[0];
  const name = (q?.name ?? '').toLowerCase().replace(/\.$/, '');
  const recs = opts.records[name];
  const base = { type: 'response' as const, id: query.id, flags: dnsPacket.AUTHORITATIVE_ANSWER | dnsPacket.RECURSION_DESIRED, questions: query.questions };
  const soa = opts.negativeSoa ? [{ type: 'SOA', name: 'test', class: 'IN', ttl: opts.negativeSoa.ttl, data: { mname: 'ns.test', rname: 'hostmaster.test', serial: 1, refresh: 60, retry: 60, expire: 60, minimum: opts.negativeSoa.minimum } }] : [];
  const forced = q ? opts.rcodeFor?.(name, q.type) : undefined;
  if (forced !== undefined) return dnsPacket.encode({ ...base, flags: ((base.flags ?? 0) & ~0xf) | forced } as dnsPacket.Packet);
  if (!q || !recs) return dnsPacket.encode({ ...base, flags: (base.flags ?? 0) | 3 /* NXDOMAIN */, authorities: soa } as dnsPacket.Packet);
  if (transport === 'udp' && opts.truncateUdp?.has(name)) {
    return dnsPacket.encode({ ...base, flags: (base.flags ?? 0) | dnsPacket.TRUNCATED_RESPONSE } as dnsPacket.Packet);
  }
  const answers = recs.filter((r) => r.type === q.type || (q.type as string) === 'ANY' || r.type === 'CNAME').map((r) => ({ type: r.type, name: q.name, class: 'IN', ttl: r.ttl ?? 300, data: r.data }));
  return dnsPacket.encode({ ...base, answers, ...(answers.length === 0 ? { authorities: soa } : {}) } as dnsPacket.Packet);
}

export async function startDnsUpstream(opts: DnsUpstreamOptions): Promise<DnsUpstream> {
  const queries: string[] = [];
  const note = (p: dnsPacket.Packet, t: string) => {
    const q = p.questions?.[0];
    if (q) queries.push(`${q.name.toLowerCase().replace(/\.$/, '')}/${q.type}/${t}`);
  };
  const onUdp = (udp: dgram.Socket) => (msg: Buffer, rinfo: dgram.RemoteInfo) => {
    let p: dnsPacket.Packet;
    try {
      p = dnsPacket.decode(msg);
    } catch {
      return;
    }
    note(p, 'udp');
    if (opts.dropUdp?.has(udpName(p))) return;
    udp.send(opts.rawAnswer?.(msg, udpName(p), p.questions?.[0]?.type ?? '') ?? answer(p, opts, 'udp'), rinfo.port, rinfo.address);
  };
  const tcp = net.createServer((sock) => {
    let buf = Buffer.alloc(0);
    sock.on('error', () => {});
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        try {
          const p = dnsPacket.decode(msg);
          note(p, 'tcp');
          const out = opts.rawAnswer?.(Buffer.from(msg), udpName(p), p.questions?.[0]?.type ?? '') ?? answer(p, opts, 'tcp');
          const framed = Buffer.alloc(2 + out.length);
          framed.writeUInt16BE(out.length, 0);
          out.copy(framed, 2);
          sock.write(framed);
        } catch {
          sock.destroy();
        }
      }
    });
  });
  // Same port for UDP and TCP, as a real server: UDP picks a free port, and when TCP
  // cannot have it (other tests on this host hold it) both try again.
  let udp!: dgram.Socket;
  let port = 0;
  for (let attempt = 0; ; attempt++) {
    udp = dgram.createSocket('udp4');
    udp.on('message', onUdp(udp));
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
    port = udp.address().port;
    try {
      await new Promise<void>((r, j) => tcp.once('error', j).listen(port, '127.0.0.1', () => r()));
      break;
    } catch (e) {
      udp.close();
      if (attempt >= 20) throw e;
    }
  }
  return {
    port,
    address: '127.0.0.1',
    queries,
    countFor: (name) => queries.filter((q) => q.startsWith(`${name}/`)).length,
    setRecords: (name, records) => {
      opts.records[name] = records;
    },
    close: async () => {
      udp.close();
      await new Promise<void>((r) => tcp.close(() => r()));
    },
  };
}

/**
 * An answer to `query` (its id and question) with `count` A records of `ttl` seconds, built
 * from bytes (names compressed to the question): cheap enough to send hundreds a second.
 */
export function manyAddressesAnswer(query: Buffer, count: number, ttl = 300): Buffer {
  let end = 12;
  while (query[end] !== 0) end += query[end]! + 1;
  end += 5; // the root label, QTYPE, QCLASS
  const head = Buffer.from(query.subarray(0, end));
  head.writeUInt16BE(0x8180, 2); // response, RD, RA
  head.writeUInt16BE(1, 4);
  head.writeUInt16BE(count, 6);
  head.writeUInt16BE(0, 8);
  head.writeUInt16BE(0, 10);
  const rr = Buffer.alloc(16 * count);
  for (let i = 0; i < count; i++) {
    const o = i * 16;
    rr.writeUInt16BE(0xc00c, o);
    rr.writeUInt16BE(1, o + 2);
    rr.writeUInt16BE(1, o + 4);
    rr.writeUInt32BE(ttl, o + 6);
    rr.writeUInt16BE(4, o + 10);
    rr.writeUInt32BE((10 << 24) | i, o + 12);
  }
  return Buffer.concat([head, rr]);
}

/** A records map where each name resolves to 127.0.0.1 (A) only. */
export function loopbackRecords(names: string[]): Record<string, TestRecord[]> {
  return Object.fromEntries(names.map((n) => [n, [{ type: 'A', data: '127.0.0.1', ttl: 60 }]]));
}
