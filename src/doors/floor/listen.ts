/** The one way a door opens and closes its TCP listener. */
import type net from 'node:net';
import { ConfigError, type HostPort } from '../../config.js';
import { portHolder } from './port-holder.js';

/**
 * A listener's port is taken: its own error (not a bad setting), naming the port, the setting
 * and, when it can be known, the process holding it.
 */
export class PortInUseError extends ConfigError {
  constructor(
    setting: string,
    readonly at: { host: string; port: number },
    readonly holder: string | null,
  ) {
    super(setting, `cannot listen on ${at.host}:${at.port}: address already in use${holder ? ` by ${holder}` : ''}; stop ${holder ? 'it' : 'what holds that port'} or give ${setting} another address`);
  }
}

/** Turns a listen failure into the one-line start-up error that names the setting. */
export function listenError(setting: string, at: { host: string; port: number }, err: unknown): Error {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'EADDRINUSE') return new PortInUseError(setting, at, portHolder(at.port));
  const why = e.code === 'EADDRNOTAVAIL' ? 'address not available on this host' : e.message;
  return new ConfigError(setting, `cannot listen on ${at.host}:${at.port}: ${why}`);
}

/** Listens on host:port; rejects with the raw error (callers that retry ports want it). */
export function listenOn(server: net.Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/**
 * Opens a door's listener: a failure names the setting; later listener errors go to
 * `onError`. Returns the address actually bound (port 0 resolved).
 */
export async function listenDoor(server: net.Server, at: HostPort, setting: string, onError: (e: Error) => void): Promise<HostPort> {
  try {
    await listenOn(server, at.port, at.host);
  } catch (e) {
    throw listenError(setting, at, e);
  }
  server.on('error', onError);
  const bound = server.address() as net.AddressInfo;
  return { host: bound.address, port: bound.port };
}

/** What a door holds open: client sockets, or sessions that own one. */
export interface OpenConnections {
  readonly size: number;
  [Symbol.iterator](): Iterator<{ destroy(): void }>;
}

/** Stops accepting, lets open connections finish for up to graceMs, then closes the rest. */
export async function closeServer(server: { close(cb?: (err?: Error) => void): unknown; closeIdleConnections?(): void }, open: OpenConnections, graceMs: number, after?: () => void): Promise<void> {
  const closed = new Promise<void>((r) => server.close(() => r()));
  server.closeIdleConnections?.();
  if (open.size > 0 && graceMs > 0) {
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        clearInterval(poll);
        resolve();
      };
      const timer = setTimeout(done, graceMs);
      const poll = setInterval(() => {
        server.closeIdleConnections?.();
        if (open.size === 0) done();
      }, 25);
    });
  }
  for (const c of open) c.destroy();
  after?.();
  await closed;
}
