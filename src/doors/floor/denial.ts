/**
 * What a denial (and the proxy's other refusals) look like in HTTP words: a 403 whose
 * short JSON body names host, policy and reason, with `X-Egress-Denied-Reason`.
 * Used on a ServerResponse (forwarded requests) and on a raw socket (CONNECT, upgrades).
 */
import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Decision } from '../../policy/decision.js';
import { PROXY_REALM } from './proxy-auth.js';

export const DENIED_REASON_HEADER = 'X-Egress-Denied-Reason';

const REASON_TEXT: Record<string, string> = {
  not_allowlisted: 'the destination is not in the network policy',
  private_address: 'the destination is a private, loopback, link-local or metadata address',
  ip_literal: 'IP-address destinations are only allowed by allowed_cidrs',
  unknown_client: 'this client is not a running devbox (or gave no valid proxy credentials)',
  invalid_host: 'the destination is not a valid host name',
  policy_missing: "the devbox's network policy does not exist",
  policy_stale: "the gateway's policy snapshot is older than --max-staleness and it fails closed (--stale fail-closed): new connections are refused until the control plane is heard from again",
  sni_mismatch: 'the TLS server name does not match the requested host',
  ech_refused: 'the TLS ClientHello uses Encrypted ClientHello, which hides the server name',
  host_mismatch: 'the Host header does not match the request URL',
};

export function denialBody(d: Decision, port?: number): string {
  return (
    JSON.stringify({
      error: 'egress_denied',
      host: d.host,
      ...(port !== undefined ? { port } : {}),
      policy: d.policyId,
      reason: d.reason,
      message: `egress to ${d.host} denied: ${REASON_TEXT[d.reason] ?? d.reason}`,
    }) + '\n'
  );
}

/** 403 on a forwarded request (the client connection may stay open for more requests). */
export function sendDenial(res: ServerResponse, d: Decision, port?: number): void {
  const body = denialBody(d, port);
  res.writeHead(403, ['Content-Type', 'application/json', 'Content-Length', String(Buffer.byteLength(body)), DENIED_REASON_HEADER, d.reason, 'Cache-Control', 'no-store']);
  res.end(body);
}

/** A refusal that is not a policy denial: 400, 407, 502, 503, 504… */
export function sendError(res: ServerResponse, status: number, message: string, extra: string[] = []): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = errorBody(status, message);
  res.writeHead(status, ['Content-Type', 'application/json', 'Content-Length', String(Buffer.byteLength(body)), 'Cache-Control', 'no-store', ...extra]);
  res.end(body);
}

export const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  405: 'Method Not Allowed',
  407: 'Proxy Authentication Required',
  408: 'Request Timeout',
  413: 'Content Too Large',
  431: 'Request Header Fields Too Large',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

export const PROXY_AUTHENTICATE = ['Proxy-Authenticate', `Basic realm="${PROXY_REALM}"`];

/** The JSON body of a refusal that is not a policy denial. */
export function errorBody(status: number, message: string): string {
  return JSON.stringify({ error: STATUS_TEXT[status] ?? 'error', message }) + '\n';
}

/**
 * A complete HTTP/1.1 response as text, for sockets node:http does not own. `last`: the
 * closing header lines (default `Connection: close`; the raw front keeps connections open).
 */
export function rawResponse(status: number, body: string, headers: string[] = [], last = 'Connection: close\r\n'): string {
  let head = `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\n`;
  for (let i = 0; i + 1 < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return `${head}Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nCache-Control: no-store\r\n${last}\r\n${body}`;
}

export function rawDenial(d: Decision, port?: number): string {
  return rawResponse(403, denialBody(d, port), [DENIED_REASON_HEADER, d.reason]);
}

export function rawError(status: number, message: string, headers: string[] = []): string {
  return rawResponse(status, errorBody(status, message), headers);
}

/** Writes a response on a raw socket and closes it once flushed (unread input is drained). */
export function endSocket(socket: Duplex, response: string): void {
  socket.on('error', () => socket.destroy());
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(response, () => socket.destroy());
  socket.resume();
}
