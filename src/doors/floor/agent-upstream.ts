/**
 * The upstream side of the credential doors: a config's endpoint parsed once, its host
 * resolved through the gateway's resolver and put through the private-address guardrail
 * (the address checked is the address dialled, as for every door), TLS verified against the
 * system CAs plus `--upstream-ca-file`, and the headers that go out: the client's, without
 * hop-by-hop and credential headers or anything carrying the devbox token, then the config's
 * custom headers and the real credential, applied last so nothing the devbox sends wins.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { ConfigError } from '../../config.js';
import type { AgentGatewayConfig, CredentialSource } from '../../policy/credentials.js';
import { type Door, type Reason, denial } from '../../policy/decision.js';
import type { Identity } from '../../policy/engine.js';
import { ResolveError } from '../../resolver/resolver.js';
import { upstreamConnectErrors } from '../../metrics.js';
import type { AgentContext } from './agent-server.js';
import type { Admitted } from './agent-admission.js';

export interface Endpoint {
  protocol: 'http:' | 'https:';
  /** Host name or IP literal (no brackets). */
  host: string;
  isIp: boolean;
  port: number;
  /** `Host` header value sent upstream. */
  hostHeader: string;
  /** The endpoint's path without a trailing slash ('' for the root). */
  basePath: string;
}

export type UpstreamAddress = { ok: true; address: string } | { ok: false; status: 502; reason: Reason; message: string };

/** Never forwarded in either direction (RFC 9110 §7.6.1 and proxy-only headers). Lower-case. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-authorization', 'proxy-authenticate', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect', 'http2-settings', 'host']);
/** Client headers that carry credentials: a devbox never sets the upstream's credential. */
const CREDENTIAL_HEADERS: ReadonlySet<string> = new Set(['authorization', 'x-api-key', 'api-key', 'cookie']);
/** Names a custom header may not take (the credential and framing are the gateway's). */
const RESERVED_CUSTOM: ReadonlySet<string> = new Set([...HOP_BY_HOP, 'authorization', 'content-length', 'cookie']);
const TOKEN_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$/;
const BAD_VALUE = /[\r\n\0]/;

function loadCa(file: string | null): string[] | undefined {
  if (file === null) return undefined;
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError('--upstream-ca-file', `cannot read ${file}: ${(e as Error).message}`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new ConfigError('--upstream-ca-file', `${file} holds no PEM certificate`);
  return [...tls.rootCertificates, pem];
}

export function parseEndpoint(raw: string): Endpoint | null {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return null;
  }
  if ((u.protocol !== 'https:' && u.protocol !== 'http:') || u.username !== '' || u.password !== '' || u.hostname === '') return null;
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  const port = u.port === '' ? (u.protocol === 'https:' ? 443 : 80) : Number(u.port);
  return { protocol: u.protocol, host, isIp: net.isIP(host) !== 0, port, hostHeader: u.host, basePath: u.pathname.replace(/\/+$/, '') };
}

/** True when a request path has a `.` or `..` segment (raw or percent-encoded): it could climb out of the endpoint's path. */
export function hasDotSegment(path: string): boolean {
  const q = path.indexOf('?');
  const p = (q < 0 ? path : path.slice(0, q)).replace(/%2e/gi, '.');
  for (const seg of p.split('/')) if (seg === '.' || seg === '..') return true;
  return p.includes('\\');
}

export class AgentUpstream {
  private readonly endpoints = new Map<string, Endpoint | null>();
  readonly httpsAgent: https.Agent;
  readonly httpAgent: http.Agent;

  constructor(
    private readonly ctx: AgentContext,
    readonly door: Door,
  ) {
    const common = { keepAlive: true, maxFreeSockets: 64, scheduling: 'lifo' as const, timeout: ctx.config.idleTimeoutMs, noDelay: true };
    // One secure context made once: an Agent given `ca` itself folds the whole CA list (the
    // system roots: ~200 KB) into its pool key on every request, which costs milliseconds.
    const ca = loadCa(ctx.config.upstreamCaFile);
    this.httpsAgent = new https.Agent({ ...common, ...(ca ? { secureContext: tls.createSecureContext({ ca }) } : {}) } as https.AgentOptions);
    this.httpAgent = new http.Agent(common as http.AgentOptions);
  }

  close(): void {
    this.httpsAgent.destroy();
    this.httpAgent.destroy();
  }

  endpoint(raw: string): Endpoint | null {
    let e = this.endpoints.get(raw);
    if (e === undefined) {
      e = parseEndpoint(raw);
      if (this.endpoints.size > 10_000) this.endpoints.clear();
      this.endpoints.set(raw, e);
    }
    return e;
  }

  /**
   * The address to dial for the endpoint: resolved through the gateway's resolver (cached
   * answers synchronously), the first address the guardrail lets through. A refusal is
   * recorded as a denial (`private_address`) against the devbox.
   */
  address(identity: Identity, ep: Endpoint, accountId: string, ref: { policyId: string | null; policyVersion: number | null }): UpstreamAddress | Promise<UpstreamAddress> {
    if (ep.isIp) return this.guard(identity, ep, [ep.host], ref);
    const cached = this.ctx.resolver.resolveCached?.(ep.host, accountId);
    if (cached !== undefined) return this.guard(identity, ep, cached, ref);
    return this.ctx.resolver.resolve(ep.host, accountId).then(
      (addrs) => this.guard(identity, ep, addrs, ref),
      (e: unknown): UpstreamAddress => ({ ok: false, status: 502, reason: 'not_allowlisted', message: `cannot resolve ${ep.host}: ${e instanceof ResolveError ? e.code : 'SERVFAIL'}` }),
    );
  }

  private guard(identity: Identity, ep: Endpoint, addrs: readonly string[], ref: { policyId: string | null; policyVersion: number | null }): UpstreamAddress {
    const rails = this.ctx.engine.guardrails;
    for (const a of addrs) if (rails.blocked(a) === null) return { ok: true, address: a };
    this.ctx.gate.record(identity, this.door, denial('private_address', ep.host, ref, ep.isIp ? 'ip' : 'name'), ep.port);
    return { ok: false, status: 502, reason: 'private_address', message: `the endpoint ${ep.host} is a private, loopback, link-local or metadata address` };
  }

  /**
   * The client's headers to forward: no hop-by-hop, no credential header, no header the
   * config sets, none whose value carries the devbox token, no header named in Connection.
   */
  forwardHeaders(raw: readonly string[], a: Admitted<AgentGatewayConfig>, drop: ReadonlySet<string> = new Set()): string[] {
    const own = new Set<string>(a.config.custom_headers.map((h) => h.name.toLowerCase()));
    if (a.config.auth_mechanism.type === 'header') own.add(a.config.auth_mechanism.key.toLowerCase());
    own.add(a.tokenHeader);
    let listed: Set<string> | null = null;
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i]!.toLowerCase() !== 'connection') continue;
      for (const t of raw[i + 1]!.split(',')) (listed ??= new Set()).add(t.trim().toLowerCase());
    }
    const out: string[] = [];
    for (let i = 0; i < raw.length; i += 2) {
      const lower = raw[i]!.toLowerCase();
      if (HOP_BY_HOP.has(lower) || CREDENTIAL_HEADERS.has(lower) || own.has(lower) || drop.has(lower) || listed?.has(lower) === true) continue;
      const v = raw[i + 1]!;
      if (v.includes(a.tokenText)) continue;
      out.push(raw[i]!, v);
    }
    return out;
  }

  /**
   * Host, the config's custom headers (literal or a secret's value) and the real credential,
   * or a message naming what is wrong with the config (answered 502, never sent half-made).
   */
  ownHeaders(a: Admitted<AgentGatewayConfig>, ep: Endpoint, creds: CredentialSource): string[] | string {
    const cfg = a.config;
    const out: string[] = ['Host', ep.hostHeader];
    const mech = cfg.auth_mechanism;
    const mechKey = mech.type === 'header' ? mech.key.toLowerCase() : 'authorization';
    for (const h of cfg.custom_headers) {
      const lower = h.name.toLowerCase();
      if (!TOKEN_NAME.test(h.name) || RESERVED_CUSTOM.has(lower) || lower === mechKey) return `custom header ${JSON.stringify(h.name.slice(0, 64))} is not allowed`;
      const v = h.secret_id !== undefined ? creds.secretValue(a.token.account_id, h.secret_id) : h.value;
      if (v === undefined) return `the secret of custom header ${h.name} no longer exists`;
      if (BAD_VALUE.test(v)) return `custom header ${h.name} has a control character in its value`;
      out.push(h.name, v);
    }
    if (BAD_VALUE.test(a.secret)) return 'the secret has a control character in its value';
    if (mech.type === 'header') {
      if (!TOKEN_NAME.test(mech.key) || RESERVED_CUSTOM.has(mechKey)) return `auth header ${JSON.stringify(mech.key.slice(0, 64))} is not allowed`;
      out.push(mech.key, a.secret);
    } else if (mech.type === 'bearer') out.push('Authorization', `Bearer ${a.secret}`);
    else out.push('Authorization', `Basic ${Buffer.from(a.secret, 'utf8').toString('base64')}`);
    return out;
  }

  /** Opens the upstream request to `address` (TLS verified against the endpoint's name), with the connect time-out. */
  request(ep: Endpoint, address: string, method: string, path: string, headers: string[]): http.ClientRequest {
    const tlsOpts = ep.protocol === 'https:' ? { servername: ep.isIp ? undefined : ep.host, agent: this.httpsAgent } : { agent: this.httpAgent };
    const mod = ep.protocol === 'https:' ? https : http;
    const opts = { host: address, port: ep.port, method, path, headers, setHost: false, ...tlsOpts } as https.RequestOptions;
    // The certificate must name the endpoint's host, not the address dialled.
    if (ep.protocol === 'https:' && !ep.isIp) opts.checkServerIdentity = (_h, cert) => tls.checkServerIdentity(ep.host, cert);
    const req = mod.request(opts);
    req.on('socket', (s: net.Socket) => {
      if (!s.connecting) return;
      const t = setTimeout(() => req.destroy(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' })), this.ctx.config.connectTimeoutMs);
      s.once('connect', () => clearTimeout(t));
      s.once('close', () => clearTimeout(t));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('upstream idle'), { code: 'ETIMEDOUT' })));
    return req;
  }

  /** Counts a failed upstream connection and says what to answer. */
  failure(e: NodeJS.ErrnoException): { status: 502 | 504; message: string } {
    const code = e.code ?? 'ERROR';
    upstreamConnectErrors.labels(this.door, code).inc();
    return { status: code === 'ETIMEDOUT' ? 504 : 502, message: `upstream failed: ${code}` };
  }
}

/** Response headers relayed to the devbox (hop-by-hop removed). */
export function responseHeaders(raw: readonly string[], drop: ReadonlySet<string> = new Set()): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase();
    if (HOP_BY_HOP.has(lower) || drop.has(lower)) continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}
