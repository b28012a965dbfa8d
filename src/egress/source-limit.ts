/**
 * A cap on client sockets per source address, across every TCP door, taken at accept:
 * the per-devbox connection limit (ConnectionTracker) only counts connections that reached
 * a destination, so idle keep-alive sockets and stalled handshakes are capped here.
 */
import type net from 'node:net';
import { protocolErrors } from '../metrics.js';

export class SourceLimiter {
  private readonly open = new Map<string, number>();

  constructor(readonly maxPerSource: number) {}

  /** Counts the socket against its source; destroys it and returns false when over the cap. */
  admit(sock: net.Socket, door: string): boolean {
    const source = (sock.remoteAddress ?? '').replace(/^::ffff:/, '');
    const n = (this.open.get(source) ?? 0) + 1;
    if (n > this.maxPerSource) {
      protocolErrors.labels(door, 'source_connection_limit').inc();
      sock.destroy();
      return false;
    }
    this.open.set(source, n);
    sock.once('close', () => {
      const left = (this.open.get(source) ?? 1) - 1;
      if (left <= 0) this.open.delete(source);
      else this.open.set(source, left);
    });
    return true;
  }
}
