/**
 * Where an HTTP request goes: the destination named by an absolute-form URL (whose Host
 * header must agree) or, on the transparent door, by the Host header; and the denial when
 * the two disagree. Shared by node:http's request handler and the proxy's raw front.
 */
import type http from 'node:http';
import type { DoorContext } from '../floor/context.js';
import { type Decision, type Door, type Reason, denial } from '../../policy/decision.js';
import type { Identity } from '../../policy/engine.js';
import { normalizeHost } from '../../policy/hostname.js';
import { protocolErrors } from '../../metrics.js';
import { parseAuthority } from '../floor/authority.js';

/** Where a request goes, as read off it. */
export interface HttpTarget {
  /** Host as the client named it (URL authority or Host header), without port or brackets. */
  host: string;
  port: number;
  /** origin-form path sent upstream. */
  path: string;
  /** The Host header value to send upstream (the client's own, verified). */
  hostHeader: string;
}

export const HOST_MISMATCH: Reason = 'host_mismatch';

export type Resolution = { ok: true; target: HttpTarget } | { ok: false; status: 400; message: string; kind?: 'bad_host' } | { ok: false; status: 403; host: string; port: number };

function hostCount(raw: string[]): number {
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.length === 4 && raw[i]!.toLowerCase() === 'host') n++;
  return n;
}

function sameHost(a: string, b: string): boolean {
  if (a === b) return true;
  const na = normalizeHost(a);
  const nb = normalizeHost(b);
  if (na.kind === 'name' && nb.kind === 'name') return na.name === nb.name;
  if (na.kind === 'ip' && nb.kind === 'ip') return na.ip === nb.ip;
  return false;
}

/**
 * The destination of an HTTP request. Absolute-form (`GET http://host[:port]/path`) names it
 * in the URL, and the Host header (when present) must agree with it; origin-form
 * (`GET /path`, transparent door only) takes it from the Host header.
 */
export function resolveTarget(req: http.IncomingMessage, allowOriginForm: boolean, originPort: number): Resolution {
  if (req.httpVersionMajor !== 1) return { ok: false, status: 400, message: 'only HTTP/1.0 and HTTP/1.1 are accepted' };
  // node keeps the first of repeated Host headers; an origin may use the last one.
  return resolveRequestTarget(req.url ?? '', req.headers.host, hostCount(req.rawHeaders), allowOriginForm, originPort);
}

/** resolveTarget on parts already read (the raw front reads them itself). */
export function resolveRequestTarget(url: string, hostHeader: string | undefined, hosts: number, allowOriginForm: boolean, originPort: number): Resolution {
  if (hostHeader !== undefined && hosts > 1) return { ok: false, status: 400, message: 'more than one Host header' };
  if (url.length > 7 && (url.charCodeAt(0) | 0x20) === 104 /* h */ && url.slice(0, 7).toLowerCase() === 'http://') {
    let end = url.indexOf('/', 7);
    const q = url.indexOf('?', 7);
    if (q >= 0 && (end < 0 || q < end)) end = q;
    const authority = end < 0 ? url.slice(7) : url.slice(7, end);
    const path = end < 0 ? '/' : url.charCodeAt(end) === 63 ? '/' + url.slice(end) : url.slice(end);
    if (authority.includes('@')) return { ok: false, status: 400, message: 'userinfo in the request URL is not accepted' };
    const a = parseAuthority(authority, 80);
    if (a === null) return { ok: false, status: 400, message: 'malformed host in the request URL' };
    if (hostHeader !== undefined) {
      const h = parseAuthority(hostHeader, 80);
      if (h === null || h.port !== a.port || !sameHost(h.host, a.host)) return { ok: false, status: 403, host: a.host, port: a.port };
    }
    const port = allowOriginForm ? originPort : a.port;
    return { ok: true, target: { host: a.host, port, path, hostHeader: hostHeader ?? authority } };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) return { ok: false, status: 400, message: 'only http:// URLs can be proxied (use CONNECT for https)' };
  if (!allowOriginForm) return { ok: false, status: 400, message: 'this is a proxy: send the absolute URL (GET http://host/path) or CONNECT' };
  if (url.charCodeAt(0) !== 47 /* / */) return { ok: false, status: 400, message: 'malformed request target' };
  if (hostHeader === undefined || hostHeader.length === 0) return { ok: false, status: 400, message: 'a Host header is required' };
  // node hands header bytes over as Latin-1: a byte ≥ 0x80 would become a bogus (punycoded) name.
  for (let i = 0; i < hostHeader.length; i++) {
    if (hostHeader.charCodeAt(i) >= 0x80) return { ok: false, status: 400, message: 'the Host header must be ASCII (send IDNs as xn--)', kind: 'bad_host' };
  }
  const h = parseAuthority(hostHeader, originPort);
  if (h === null) return { ok: false, status: 400, message: 'malformed Host header' };
  return { ok: true, target: { host: h.host, port: originPort, path: url, hostHeader } };
}

/** A Host header that disagrees with the URL: denied as host_mismatch, naming the devbox's policy. */
export function denyHostMismatch(ctx: DoorContext<'engine' | 'gate'>, identity: Identity, host: string, port: number, door: Door): Decision {
  // decide() on the URL's host gives the policy to name.
  const d = denial(HOST_MISMATCH, host, ctx.engine.decide(identity, host, port), 'name');
  ctx.gate.record(identity, door, d, port);
  protocolErrors.labels(door, 'host_mismatch').inc();
  return d;
}
