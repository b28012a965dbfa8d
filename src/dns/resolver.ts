/**
 * How the gateway itself turns a name into addresses (for the proxy doors): through the
 * configured upstream DNS servers, never the host's stub resolver, so the DNS door and
 * the proxy doors see the same answers.
 */
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';
import type { HostPort } from '../config.js';

export class ResolveError extends Error {
  constructor(readonly code: 'NXDOMAIN' | 'NODATA' | 'SERVFAIL' | 'TIMEOUT', readonly host: string) {
    super(`${code} resolving ${host}`);
  }
}

export interface Resolver {
  /** IPv4 addresses first, then IPv6; rejects with ResolveError. */
  resolve(name: string): Promise<string[]>;
}

/** A minimal uncached resolver over UDP; the DNS door's cached upstream replaces it. */
export class SimpleUpstreamResolver implements Resolver {
  constructor(private readonly upstreams: readonly HostPort[], private readonly timeoutMs = 2000) {}

  async resolve(name: string): Promise<string[]> {
    const [a, aaaa] = await Promise.allSettled([this.query(name, 'A'), this.query(name, 'AAAA')]);
    const out = [...(a.status === 'fulfilled' ? a.value : []), ...(aaaa.status === 'fulfilled' ? aaaa.value : [])];
    if (out.length > 0) return out;
    if (a.status === 'rejected') throw a.reason;
    throw new ResolveError('NODATA', name);
  }

  private async query(name: string, type: 'A' | 'AAAA'): Promise<string[]> {
    let last: unknown = new ResolveError('SERVFAIL', name);
    for (const up of this.upstreams) {
      try {
        return await this.ask(up, name, type);
      } catch (e) {
        last = e;
        if (e instanceof ResolveError && e.code === 'NXDOMAIN') throw e;
      }
    }
    throw last;
  }

  private ask(up: HostPort, name: string, type: 'A' | 'AAAA'): Promise<string[]> {
    return new Promise((resolve, reject) => {
      const sock = dgram.createSocket(up.host.includes(':') ? 'udp6' : 'udp4');
      const id = Math.floor(Math.random() * 65536);
      const timer = setTimeout(() => finish(new ResolveError('TIMEOUT', name)), this.timeoutMs);
      const finish = (err: Error | null, value?: string[]) => {
        clearTimeout(timer);
        sock.close();
        if (err) reject(err);
        else resolve(value ?? []);
      };
      sock.on('error', () => finish(new ResolveError('SERVFAIL', name)));
      sock.on('message', (msg) => {
        let p: dnsPacket.Packet;
        try {
          p = dnsPacket.decode(msg);
        } catch {
          return;
        }
        if (p.id !== id) return;
        const rcode = (p as { rcode?: string }).rcode;
        if (rcode === 'NXDOMAIN') return finish(new ResolveError('NXDOMAIN', name));
        if (rcode !== 'NOERROR') return finish(new ResolveError('SERVFAIL', name));
        const ips = (p.answers ?? []).filter((r) => r.type === type).map((r) => String((r as { data: unknown }).data));
        finish(null, ips);
      });
      const q = dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name, class: 'IN' }] });
      sock.send(q, up.port, up.host);
    });
  }
}
