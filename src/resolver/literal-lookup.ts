import dns from 'node:dns';
import net from 'node:net';

/**
 * dgram's address lookup for IP literals, answered at once: every answer goes back to a
 * client's source address, so node's default (dns.lookup, then a nextTick per datagram)
 * is pure cost on the hot path. Anything that is not an IP still goes to dns.lookup.
 */
export function literalLookup(host: string, options: unknown, callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void): void {
  const family = net.isIP(host);
  if (family !== 0) {
    callback(null, host, family);
    return;
  }
  dns.lookup(host, options as dns.LookupOneOptions, callback);
}
