/** A raw TCP exchange for attack tests: send bytes as a hostile client would, see what comes back. */
import net from 'node:net';

export interface RawResult {
  /** Every byte the server sent. */
  received: Buffer;
  /** The server closed (FIN or RST) before our time-out. */
  closed: boolean;
  /** ms from connect to close (or to the time-out). */
  elapsedMs: number;
}

export interface RawOptions {
  host?: string;
  localAddress?: string;
  /** Pause between chunks, for slow or byte-by-byte clients. */
  gapMs?: number;
  /** Half-close after the last chunk. */
  endAfterSend?: boolean;
  timeoutMs?: number;
}

/**
 * Sends bytes (all at once, or as separate chunks with a pause between) on a raw socket
 * and collects what comes back until the server closes or `timeoutMs` passes.
 */
export function rawExchange(port: number, chunks: Buffer | string | Array<Buffer | string>, opts: RawOptions = {}): Promise<RawResult> {
  const parts = Array.isArray(chunks) ? chunks : [chunks];
  return new Promise((resolve) => {
    const started = Date.now();
    const got: Buffer[] = [];
    const sock = net.connect({ host: opts.host ?? '127.0.0.1', port, localAddress: opts.localAddress, allowHalfOpen: false });
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ received: Buffer.concat(got), closed, elapsedMs: Date.now() - started });
    };
    const timer = setTimeout(() => finish(false), opts.timeoutMs ?? 3000);
    sock.on('data', (d: Buffer) => got.push(d));
    sock.on('error', () => finish(true));
    sock.on('close', () => finish(true));
    sock.on('end', () => finish(true));
    sock.on('connect', async () => {
      for (let i = 0; i < parts.length; i++) {
        if (done) return;
        sock.write(parts[i]!);
        if (opts.gapMs && i < parts.length - 1) await new Promise((r) => setTimeout(r, opts.gapMs));
      }
      if (opts.endAfterSend && !done) sock.end();
    });
  });
}
