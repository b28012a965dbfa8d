/**
 * Checks of the agent resources the schema cannot express (issue 21): secret and env-var
 * names, endpoints, auth mechanisms, custom headers (no CR/LF/NUL, no hop-by-hop or
 * credential-bearing names, no duplicates, nothing that overrides the credential), and MCP
 * tool globs (picomatch). Every failure is a 400 naming the field and the offending value.
 */
import picomatch from 'picomatch';
import type { AuthMechanism } from '../policy/credentials.js';
import type { HeaderInput } from '../store/agents.js';
import { badRequest } from './errors.js';

const show = (v: unknown) => JSON.stringify(v);

/** Env-var-like: letters, digits and underscores, not starting with a digit. */
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const MAX_ENV_NAME = 128;

export function checkEnvName(field: string, name: string): string {
  if (name.length > MAX_ENV_NAME || !ENV_NAME.test(name)) throw badRequest(`${field}: ${show(name.slice(0, 200))} is not an environment variable name (letters, digits and _, not starting with a digit, at most ${MAX_ENV_NAME})`);
  return name;
}

/** RFC 9110 token characters: excludes CR, LF, NUL, space, colon and every other separator. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Control characters other than horizontal tab (CR, LF and NUL among them). */
const BAD_VALUE = /[\u0000-\u0008\u000a-\u001f\u007f]/;

/**
 * Names a custom header may not set: hop-by-hop headers (RFC 9110 §7.6.1, and the proxy
 * ones), what frames or routes the request, and the credential headers the gateway owns.
 */
const FORBIDDEN_HEADERS = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'authorization', 'host', 'content-length', 'expect', 'http2-settings']);

function checkHeaderName(field: string, name: string): string {
  if (name.length > 256 || !HEADER_NAME.test(name)) throw badRequest(`${field}: ${show(name.slice(0, 300))} is not a valid header name (RFC 9110 token characters only; no spaces, colons, CR, LF or NUL)`);
  if (FORBIDDEN_HEADERS.has(name.toLowerCase())) throw badRequest(`${field}: ${show(name)} cannot be set by a config (hop-by-hop, framing or credential header)`);
  return name;
}

export function checkAuthMechanism(field: string, m: { type: string; key?: string | null }): AuthMechanism {
  if (m.type === 'header') {
    if (!m.key) throw badRequest(`${field}.key is required for type "header" (the header that carries the credential, e.g. x-api-key)`);
    return { type: 'header', key: checkHeaderName(`${field}.key`, m.key).toLowerCase() };
  }
  if (m.key != null) throw badRequest(`${field}.key is only valid for type "header"`);
  if (m.type === 'bearer' || m.type === 'basic') return { type: m.type };
  throw badRequest(`${field}.type must be one of "header", "bearer", "basic" (got ${show(m.type)})`);
}

/** At most 8, exactly one of value and secret each, names distinct (case-insensitive) and not the credential's own header. */
export function checkCustomHeaders(raw: readonly { name: string; value?: string | null; secret?: string | null }[], mechanism: AuthMechanism): HeaderInput[] {
  if (raw.length > 8) throw badRequest(`custom_headers: at most 8 entries (got ${raw.length})`);
  const seen = new Set<string>();
  const credential = mechanism.type === 'header' ? mechanism.key : 'authorization';
  return raw.map((h, i) => {
    const field = `custom_headers[${i}]`;
    const name = checkHeaderName(`${field}.name`, h.name);
    const lower = name.toLowerCase();
    if (seen.has(lower)) throw badRequest(`${field}.name: ${show(name)} appears twice; header names must be distinct`);
    if (lower === credential) throw badRequest(`${field}.name: ${show(name)} is the header auth_mechanism sets; a custom header cannot override the credential`);
    seen.add(lower);
    const hasValue = h.value != null;
    const hasSecret = h.secret != null;
    if (hasValue === hasSecret) throw badRequest(`${field}: give exactly one of "value" and "secret"`);
    if (hasSecret) return { name, secret: h.secret! };
    if (BAD_VALUE.test(h.value!)) throw badRequest(`${field}.value must not contain control characters (CR, LF, NUL …)`);
    return { name, value: h.value! };
  });
}

/** An http(s) URL without credentials, query or fragment; returned without a trailing slash. */
export function checkEndpoint(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw badRequest(`endpoint: ${show(raw.slice(0, 300))} is not a URL`);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw badRequest(`endpoint: the scheme must be https or http (got ${show(u.protocol.replace(/:$/, ''))})`);
  if (u.username !== '' || u.password !== '') throw badRequest('endpoint: must not carry credentials (user:password@); use auth_mechanism and a secret');
  if (u.search !== '' || u.hash !== '' || raw.includes('?') || raw.includes('#')) throw badRequest('endpoint: must not have a query or a fragment');
  if (u.hostname === '') throw badRequest('endpoint: needs a host');
  return `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, '')}`;
}

/** The name's first segment before `-` must be a service name tools can be prefixed with. */
export function checkMcpName(name: string): string {
  const service = name.split('-', 1)[0]!;
  if (!/^[A-Za-z0-9_]{1,64}$/.test(service)) throw badRequest(`name: ${show(name)} must start with a service name (letters, digits, _) before any "-" (e.g. github-readonly → github)`);
  return name;
}

/** Tool globs: each compiles with picomatch, no control characters or spaces. */
export function checkAllowedTools(raw: readonly string[]): string[] {
  if (raw.length === 0) throw badRequest('allowed_tools: give at least one glob (e.g. "search_*" or "*")');
  return raw.map((g, i) => {
    if (g.length === 0 || g.length > 256 || /[\s\u0000-\u001f\u007f]/.test(g)) throw badRequest(`allowed_tools[${i}]: ${show(g.slice(0, 300))} must be 1 to 256 characters without spaces or control characters`);
    try {
      picomatch.makeRe(g, { strictBrackets: true });
    } catch (e) {
      throw badRequest(`allowed_tools[${i}]: ${show(g)} is not a valid glob: ${(e as Error).message}`);
    }
    return g;
  });
}
