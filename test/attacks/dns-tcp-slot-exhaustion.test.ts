/**
 * Attack: clients that are not devboxes (unregistered or shut-down addresses on the devbox
 * network) fill the DNS door's global TCP connection table. The door allows 64 TCP
 * connections per source and 1024 in all, and counts a connection as soon as it is
 * accepted, before anyone knows whether its source is a devbox; an idle one lives 10 s
 * and a query every few seconds (answered REFUSED) keeps it alive. Seventeen unknown
 * addresses are enough to make every devbox's TCP DNS (truncated answers, large records)
 * fail.
 *
 * Expected: a connection from an address that is no running devbox is refused at accept
 * (REFUSED on its first query then closed, or not counted against the shared table), so
 * a registered devbox still gets TCP DNS while unknown clients hold the table.
 * Fix: src/doors/dns/server.ts startDnsServer(): identify the source on accept (engine
 * identifyByAddress) and either close unknown sources after answering, or give them a
 * small separate budget outside maxTcpConnections.
 */
import net from 'node:net';
import dnsPacket from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDnsUpstream, loopbackRecords, type DnsUpstream } from '../support/dns-upstream.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';

let up: DnsUpstream;
let gw: TestGateway;
beforeAll(async () => {
  up = await startDnsUpstream({ records: loopbackRecords(['allowed.test']) });
  gw = await startTestGateway({ upstreamDnsPort: up.port });
  const p = await gw.api.policy('p', { allowed_hostnames: ['allowed.test'] });
  await gw.api.devbox(p, ['127.0.0.2']);
});
afterAll(async () => {
  await gw?.close();
  await up?.close();
});

function frame(name: string, id: number): Buffer {
  const q = dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name, class: 'IN' }] });
  const out = Buffer.alloc(q.length + 2);
  out.writeUInt16BE(q.length, 0);
  q.copy(out, 2);
  return out;
}

/** One TCP query from `source`; resolves with the rcode, or 'closed' / 'timeout'. */
function tcpQuery(port: number, source: string, name: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port, localAddress: source });
    let buf = Buffer.alloc(0);
    const done = (v: string) => {
      clearTimeout(t);
      s.destroy();
      resolve(v);
    };
    const t = setTimeout(() => done('timeout'), 1500);
    s.on('error', () => done('closed'));
    s.on('close', () => done('closed'));
    s.on('connect', () => s.write(frame(name, 7)));
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) done((dnsPacket.decode(buf.subarray(2)) as { rcode?: string }).rcode ?? 'NOERROR');
    });
  });
}

describe('DNS over TCP: unknown clients cannot take every connection slot', () => {
  it('a devbox still resolves over TCP while 17 unknown addresses hold 64 idle connections each', async () => {
    const port = gw.addr('dns').port;
    expect(await tcpQuery(port, '127.0.0.2', 'allowed.test')).toBe('NOERROR');
    const held: net.Socket[] = [];
    const opened: Promise<void>[] = [];
    for (let a = 0; a < 17; a++) {
      for (let i = 0; i < 64; i++) {
        const s = net.connect({ host: '127.0.0.1', port, localAddress: `127.0.9.${10 + a}` });
        s.on('error', () => {});
        opened.push(
          new Promise((r) => {
            s.once('connect', () => r());
            s.once('close', () => r());
          }),
        );
        held.push(s);
      }
    }
    try {
      await Promise.all(opened);
      await new Promise((r) => setTimeout(r, 100));
      expect(await tcpQuery(port, '127.0.0.2', 'allowed.test')).toBe('NOERROR');
    } finally {
      for (const s of held) s.destroy();
    }
  });
});
