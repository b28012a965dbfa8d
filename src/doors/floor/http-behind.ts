/**
 * node:http behind a raw listener: the doors that speak HTTP (the HTTP proxy, transparent HTTP,
 * the agent gateway and MCP hub) accept each socket themselves (source limit, tracking) and hand
 * it to a node:http server. What they share: the answer to a malformed or slow request head,
 * opening the pair, and the close/drain shape `closeServer` takes.
 */
import type http from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { HostPort } from '../../config.js';
import { protocolErrors } from '../../metrics.js';
import type { Door } from '../../policy/decision.js';
import { rawError } from './denial.js';
import { listenDoor } from './listen.js';

/** node:http's client errors the gateway answers with their own status; anything else is a 400. */
const CLIENT_ERROR: Readonly<Record<string, readonly [status: number, kind: string, message: string]>> = {
  HPE_HEADER_OVERFLOW: [431, 'header_overflow', 'request headers too large'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'header_timeout', 'request headers took too long'],
};
const BAD_REQUEST = [400, 'bad_request', 'malformed HTTP request'] as const;

/** The `clientError` answer: counted by kind, written once, and the socket gone within a second even if the client never reads. */
export function answerClientError(door: Door, err: NodeJS.ErrnoException, socket: Duplex): void {
  socket.on('error', () => {});
  const code = err.code ?? '';
  if (code === 'ECONNRESET' || code === 'EPIPE' || !socket.writable) {
    socket.destroy();
    return;
  }
  const [status, kind, message] = CLIENT_ERROR[code] ?? BAD_REQUEST;
  protocolErrors.labels(door, kind).inc();
  socket.end(rawError(status, message), () => socket.destroy());
  const t = setTimeout(() => socket.destroy(), 1000);
  socket.once('close', () => clearTimeout(t));
}

/** Opens the raw listener; returns the address bound. */
export async function listenHttpBehind(listener: net.Server, server: http.Server, at: HostPort, setting: string, onError: (e: Error) => void): Promise<HostPort> {
  const address = await listenDoor(listener, at, setting, onError);
  // node:http checks its connections' header time-outs only once it has heard 'listening'.
  server.emit('listening');
  return address;
}

/** What closeServer() closes: both servers; draining first lets the door stop keep-alive (`onDrain`). */
export function httpBehindClosable(listener: net.Server, server: http.Server, onDrain: () => void): { close(cb: () => void): unknown; closeIdleConnections(): void } {
  return {
    close: (cb: () => void) => {
      server.close();
      return listener.close(cb);
    },
    closeIdleConnections: () => {
      onDrain();
      server.closeIdleConnections();
    },
  };
}
