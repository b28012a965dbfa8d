/**
 * What a denial (and the proxy's other refusals) look like in HTTP words: a 403 whose
 * short JSON body names host, policy, reason and (explain.ts) the detail and remedy, with
 * `X-Egress-Denied-Reason`, `-Detail` and `-Remedy`.
 * Used on a ServerResponse (forwarded requests) and on a raw socket (CONNECT, upgrades).
 */
import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { GatewayConfig } from '../../config.js';
import type { Decision } from '../../policy/decision.js';
import { explainDenial } from '../../policy/explain.js';
import { PROXY_REALM } from './proxy-auth.js';

export const DENIED_REASON_HEADER = 'X-Egress-Denied-Reason';

/** The detail (address and range, or the rule) and the remedy, beside the reason. */
export const DENIED_DETAIL_HEADER = 'X-Egress-Denied-Detail';
export const DENIED_REMEDY_HEADER = 'X-Egress-Denied-Remedy';

/** A header value from gateway-made text: printable ASCII only (never a raw client byte). */
const headerSafe = (s: string) => s.replace(/[^\x20-\x7e]/g, '?').slice(0, 200);

/** The X-Egress-Denied-* headers of a denial, as name/value pairs. */
export function denialHeaders(d: Decision): string[] {
  const x = explainDenial(d);
  const out = [DENIED_REASON_HEADER, d.reason];
  if (x.detail !== null) out.push(DENIED_DETAIL_HEADER, headerSafe(x.detail));
  if (x.remedy !== null) out.push(DENIED_REMEDY_HEADER, headerSafe(x.remedy));
  return out;
}

export function denialBody(d: Decision, port?: number): string {
  const x = explainDenial(d);
  const a = d.detail;
  return (
    JSON.stringify({
      error: 'egress_denied',
      host: d.host,
      ...(port !== undefined ? { port } : {}),
      policy: d.policyId,
      reason: d.reason,
      message: `egress to ${d.host} denied: ${x.text}`,
      ...(a?.address !== undefined ? { address: a.address, range: a.range ?? null, range_name: a.rangeName ?? null } : {}),
      ...(x.detail !== null ? { detail: x.detail } : {}),
      ...(x.remedy !== null ? { remedy: x.remedy } : {}),
    }) + '\n'
  );
}

/**
 * The 503 text for a devbox at its connection cap: the limit this process enforces and its
 * setting (with --workers N each worker enforces its share).
 */
export function connectionCapMessage(c: Pick<GatewayConfig, 'maxConnectionsPerDevbox' | 'workers'>): string {
  const where = c.workers > 1 ? ` in this worker (--max-connections-per-devbox, split over ${c.workers} workers)` : ' (--max-connections-per-devbox)';
  return `too many open connections for this devbox: the limit is ${c.maxConnectionsPerDevbox}${where}`;
}

/** 403 on a forwarded request (the client connection may stay open for more requests). */
export function sendDenial(res: ServerResponse, d: Decision, port?: number): void {
  const body = denialBody(d, port);
  res.writeHead(403, ['Content-Type', 'application/json', 'Content-Length', String(Buffer.byteLength(body)), ...denialHeaders(d), 'Cache-Control', 'no-store']);
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
  return rawResponse(403, denialBody(d, port), denialHeaders(d));
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
