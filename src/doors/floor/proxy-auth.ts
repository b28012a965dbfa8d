/**
 * Who is asking: proxy credentials when the client gives them, else the source address of
 * a running devbox, else an unknown client (decide() denies it as unknown_client).
 */
import type { PolicyEngine, Identity } from '../../policy/engine.js';

/** The realm proxies answer 407 with. */
export const PROXY_REALM = 'egress-gateway';

export interface BasicCredentials {
  username: string;
  password: string;
}

/** Parses `Basic base64(user:pass)`; null for any other scheme or a malformed value. */
export function parseBasic(header: string): BasicCredentials | null {
  const h = header.trim();
  if (h.length < 7 || h.slice(0, 6).toLowerCase() !== 'basic ') return null;
  const b64 = h.slice(6).trim();
  if (b64.length === 0 || b64.length > 4096 || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return null;
  const text = Buffer.from(b64, 'base64').toString('utf8');
  const i = text.indexOf(':');
  if (i <= 0) return null;
  return { username: text.slice(0, i), password: text.slice(i + 1) };
}

/**
 * The identity of a request or connection. `authorization` is the Proxy-Authorization
 * header (or SOCKS username/password already split: pass `credentials`). Null means the
 * client offered credentials and they are wrong (407, SOCKS auth failure): a wrong
 * password never falls back to the source address.
 */
export function identify(engine: PolicyEngine, source: string, authorization?: string | null, credentials?: BasicCredentials | null): Identity | null {
  let creds = credentials ?? null;
  if (creds === null && authorization !== undefined && authorization !== null) {
    creds = parseBasic(authorization);
    if (creds === null) return null;
  }
  if (creds !== null) return engine.identifyByCredentials(creds.username, creds.password, source);
  return engine.identifyByAddress(source);
}
