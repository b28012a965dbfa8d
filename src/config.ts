/**
 * Flags, environment and config file folded into one typed object.
 * Precedence: flag > env (EGRESS_<FLAG_IN_UPPER_SNAKE>) > --config file (JSON or YAML) > default.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { parseCidr, parseIpLiteral } from './policy/ip.js';
import { normalizeAllowedHostname } from './policy/hostname.js';
import type { EngineOptions } from './policy/engine.js';

export class ConfigError extends Error {
  constructor(
    readonly setting: string,
    message: string,
  ) {
    super(`${setting}: ${message}`);
  }
}

export interface HostPort {
  host: string;
  port: number;
}

export interface ApiToken {
  token: string;
  accountId: string;
}

export interface GatewayConfig {
  api: HostPort;
  apiTlsCert: string | null;
  apiTlsKey: string | null;
  httpProxy: HostPort | null;
  socks: HostPort | null;
  dns: HostPort | null;
  transparentTls: HostPort | null;
  transparentHttp: HostPort | null;
  /** Agent gateway: proxies a devbox's API calls upstream with the real credential (docs/agent-gateway.md). */
  agentGateway: HostPort | null;
  /** The agent gateway's URL as devboxes reach it (put in minted tokens); null: derived from --agent-gateway. */
  agentGatewayUrl: string | null;
  /** MCP hub: proxies MCP Streamable HTTP with tool-level access control. */
  mcpHub: HostPort | null;
  mcpHubUrl: string | null;
  /** Extra CA certificates (PEM) trusted for upstream TLS of the agent gateway and MCP hub. */
  upstreamCaFile: string | null;
  /** AES-256-GCM key for secrets at rest; created with mode 0600 on first start when missing. */
  secretsKeyFile: string;
  transparentTlsUpstreamPort: number;
  transparentHttpUpstreamPort: number;
  upstreamDns: HostPort[];
  db: string;
  apiTokens: ApiToken[];
  allowPrivate: string[];
  agentGatewayHosts: string[];
  mcpGatewayHosts: string[];
  mirrorHosts: string[];
  tunnelDomain: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  dnsDenyRcode: 'nxdomain' | 'refused';
  dnsMinTtl: number;
  dnsMaxTtl: number;
  dnsFailureTtl: number;
  dnsLearnGrace: number;
  dnsRateLimit: number;
  dnsCacheSize: number;
  dnsCacheBytes: number;
  dnsCacheBytesPerAccount: number;
  dnsLearnPerAnswer: number;
  dnsLearnPerDevbox: number;
  dnsUpstreamTimeoutMs: number;
  /** Removed (replaced by --workers): set only to refuse it at start-up with the way out. */
  dnsWorkers: number | null;
  /** Processes running every door (1: this process alone, as before --workers). */
  workers: number;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  headerTimeoutMs: number;
  maxHeaderBytes: number;
  maxConnectionsPerDevbox: number;
  maxClientConnections: number;
  upstreamPoolMax: number;
  upstreamPoolPerDevbox: number;
  upstreamPoolIdleMs: number;
  dnsTcpMax: number;
  dnsTcpPerDevbox: number;
  maxPoliciesPerAccount: number;
  maxEntriesPerPolicy: number;
  maxEntriesPerAccount: number;
  maxDevboxesPerAccount: number;
  maxAddressesPerAccount: number;
  apiPageBytes: number;
  shutdownGraceMs: number;
  eventsRetentionHours: number;
  eventsMaxPerDevbox: number;
  eventsFlushMs: number;
  responseTimeoutMs: number;
  logAllowed: LogAllowed;
  logBufferBytes: number;
  /** Fleet mode (src/fleet/): publish committed changes to this NATS server, or follow it as a sidecar. */
  nats: string | null;
  natsBucket: string;
  natsUser: string | null;
  natsPassword: string | null;
  natsCreds: string | null;
  follow: string | null;
  hostId: string | null;
}

/** Which allowed connections get a log line (denials always do): every one, one in N, none. */
export type LogAllowed = { mode: 'all' } | { mode: 'sample'; every: number } | { mode: 'none' };

type Kind =
  | { t: 'hostport' }
  | { t: 'hostportOrOff' }
  | { t: 'hostportList' }
  | { t: 'string' }
  | { t: 'stringOrNull' }
  | { t: 'list' }
  | { t: 'cidrList' }
  | { t: 'tokens' }
  | { t: 'int'; min: number; max: number }
  | { t: 'logAllowed' }
  | { t: 'enum'; values: readonly string[] };

export interface OptionSpec {
  key: keyof GatewayConfig;
  flag: string;
  kind: Kind;
  def: () => unknown;
  help: string;
  /** Env var name when it is not EGRESS_<FLAG_IN_UPPER_SNAKE>. */
  env?: string;
}

const hp = (s: string): HostPort => parseHostPort('default', s);

export const OPTIONS: readonly OptionSpec[] = [
  { key: 'api', flag: 'api', kind: { t: 'hostport' }, def: () => hp('127.0.0.1:8080'), help: 'admin REST API, /metrics, /healthz, /openapi.json' },
  { key: 'apiTlsCert', flag: 'api-tls-cert', kind: { t: 'stringOrNull' }, def: () => null, help: 'PEM certificate: serve the API over TLS (h2 + http/1.1 by ALPN)' },
  { key: 'apiTlsKey', flag: 'api-tls-key', kind: { t: 'stringOrNull' }, def: () => null, help: 'PEM private key for --api-tls-cert' },
  { key: 'httpProxy', flag: 'http-proxy', kind: { t: 'hostportOrOff' }, def: () => hp('127.0.0.1:3128'), help: 'HTTP forward proxy with CONNECT ("off" to disable)' },
  { key: 'socks', flag: 'socks', kind: { t: 'hostportOrOff' }, def: () => hp('127.0.0.1:1080'), help: 'SOCKS5 proxy ("off" to disable)' },
  { key: 'dns', flag: 'dns', kind: { t: 'hostportOrOff' }, def: () => hp('127.0.0.1:5353'), help: 'filtering DNS resolver, UDP and TCP ("off" to disable)' },
  { key: 'transparentTls', flag: 'transparent-tls', kind: { t: 'hostportOrOff' }, def: () => null, help: 'transparent TLS listener, decides on SNI (off unless given)' },
  { key: 'transparentHttp', flag: 'transparent-http', kind: { t: 'hostportOrOff' }, def: () => null, help: 'transparent HTTP listener, decides on Host (off unless given)' },
  { key: 'agentGateway', flag: 'agent-gateway', kind: { t: 'hostportOrOff' }, def: () => hp('127.0.0.1:8081'), help: 'agent gateway: a devbox calls external APIs with a gateway token, the real credential is applied here ("off" to disable)' },
  { key: 'agentGatewayUrl', flag: 'agent-gateway-url', kind: { t: 'stringOrNull' }, def: () => null, help: 'URL devboxes use to reach the agent gateway, put in minted tokens (default: http:// + the --agent-gateway address)' },
  { key: 'mcpHub', flag: 'mcp-hub', kind: { t: 'hostportOrOff' }, def: () => hp('127.0.0.1:8082'), help: 'MCP hub: MCP Streamable HTTP to upstream MCP servers with tool-level access control ("off" to disable)' },
  { key: 'mcpHubUrl', flag: 'mcp-hub-url', kind: { t: 'stringOrNull' }, def: () => null, help: 'URL devboxes use to reach the MCP hub, put in minted tokens (default: http:// + the --mcp-hub address)' },
  { key: 'upstreamCaFile', flag: 'upstream-ca-file', kind: { t: 'stringOrNull' }, def: () => null, help: 'PEM CA certificates trusted, beside the system CAs, for the agent gateway and MCP hub upstreams' },
  { key: 'secretsKeyFile', flag: 'secrets-key-file', kind: { t: 'string' }, def: () => './data/secrets.key', help: 'AES-256-GCM key for secrets at rest (created with mode 0600 on first start when missing)' },
  { key: 'transparentTlsUpstreamPort', flag: 'transparent-tls-upstream-port', kind: { t: 'int', min: 1, max: 65535 }, def: () => 443, help: 'port the transparent TLS door dials on the checked address' },
  { key: 'transparentHttpUpstreamPort', flag: 'transparent-http-upstream-port', kind: { t: 'int', min: 1, max: 65535 }, def: () => 80, help: 'port the transparent HTTP door dials on the checked address' },
  { key: 'upstreamDns', flag: 'upstream-dns', kind: { t: 'hostportList' }, def: resolvConfNameservers, help: 'upstream resolvers HOST:PORT[,HOST:PORT…] (default: /etc/resolv.conf)' },
  { key: 'db', flag: 'db', kind: { t: 'string' }, def: () => './data/egress.db', help: 'sqlite file (created with its folder)' },
  { key: 'apiTokens', flag: 'api-token', env: 'EGRESS_API_TOKENS', kind: { t: 'tokens' }, def: () => [], help: 'TOKEN:ACCOUNT_ID, repeatable' },
  { key: 'allowPrivate', flag: 'allow-private', kind: { t: 'cidrList' }, def: () => [], help: 'CIDR exempt from the private-address guardrail, repeatable' },
  { key: 'agentGatewayHosts', flag: 'agent-gateway-hosts', kind: { t: 'list' }, def: () => [], help: 'hosts allow_agent_gateway admits (comma-separated)' },
  { key: 'mcpGatewayHosts', flag: 'mcp-gateway-hosts', kind: { t: 'list' }, def: () => [], help: 'hosts allow_mcp_gateway admits' },
  { key: 'mirrorHosts', flag: 'mirror-hosts', kind: { t: 'list' }, def: () => [], help: 'hosts allow_runloop_mirrors admits' },
  { key: 'tunnelDomain', flag: 'tunnel-domain', kind: { t: 'string' }, def: () => 'tunnel.runloop.ai', help: 'devbox tunnel domain for allow_devbox_to_devbox' },
  { key: 'logLevel', flag: 'log-level', kind: { t: 'enum', values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] }, def: () => 'info', help: 'log level' },
  { key: 'dnsDenyRcode', flag: 'dns-deny-rcode', kind: { t: 'enum', values: ['nxdomain', 'refused'] }, def: () => 'nxdomain', help: 'answer for denied names' },
  { key: 'dnsMinTtl', flag: 'dns-min-ttl', kind: { t: 'int', min: 0, max: 86400 }, def: () => 5, help: 'lowest TTL the answer cache keeps (s)' },
  { key: 'dnsMaxTtl', flag: 'dns-max-ttl', kind: { t: 'int', min: 1, max: 604800 }, def: () => 3600, help: 'highest TTL the answer cache keeps (s)' },
  { key: 'dnsFailureTtl', flag: 'dns-failure-ttl', kind: { t: 'int', min: 1, max: 300 }, def: () => 5, help: 'seconds a resolution failure (upstream SERVFAIL, REFUSED, time-out) is cached per name and type, per account (RFC 9520)' },
  { key: 'dnsLearnGrace', flag: 'dns-learn-grace', kind: { t: 'int', min: 0, max: 86400 }, def: () => 60, help: 'seconds past TTL a DNS-learned address stays admitted' },
  { key: 'dnsRateLimit', flag: 'dns-rate-limit', kind: { t: 'int', min: 0, max: 10_000_000 }, def: () => 2000, help: 'queries per second per client (0: unlimited)' },
  { key: 'dnsCacheSize', flag: 'dns-cache-size', kind: { t: 'int', min: 1, max: 10_000_000 }, def: () => 20_000, help: 'answers the DNS cache holds (name/type/class)' },
  { key: 'dnsCacheBytes', flag: 'dns-cache-bytes', kind: { t: 'int', min: 65_536, max: 17_179_869_184 }, def: () => 32 * 1024 * 1024, help: "bytes the DNS answer cache holds in all, per host (past it the largest account's oldest answers go)" },
  { key: 'dnsCacheBytesPerAccount', flag: 'dns-cache-bytes-per-account', kind: { t: 'int', min: 65_536, max: 17_179_869_184 }, def: () => 4 * 1024 * 1024, help: "bytes of DNS answers one account's partition of the cache holds" },
  { key: 'dnsLearnPerAnswer', flag: 'dns-learn-per-answer', kind: { t: 'int', min: 1, max: 65_535 }, def: () => 32, help: 'addresses of one DNS answer a devbox learns (may then dial by address); the answer is still served whole, the rest counted as dropped' },
  { key: 'dnsLearnPerDevbox', flag: 'dns-learn-per-devbox', kind: { t: 'int', min: 1, max: 1_000_000 }, def: () => 4096, help: 'DNS-learned addresses one devbox holds at once; past it new ones are dropped (counted) until old ones expire' },
  { key: 'dnsUpstreamTimeoutMs', flag: 'dns-upstream-timeout-ms', kind: { t: 'int', min: 10, max: 60_000 }, def: () => 1000, help: 'time one upstream has to answer before the next is tried' },
  {
    key: 'workers',
    flag: 'workers',
    kind: { t: 'int', min: 1, max: 256 },
    def: () => 1,
    help: 'processes running every door, sharing each listener (1: this process alone, the sidecar default; N > 1: N door processes beside a primary holding the store, the API and the DNS cache, see docs/operations.md)',
  },
  { key: 'dnsWorkers', flag: 'dns-workers', kind: { t: 'int', min: 0, max: 64 }, def: () => null, help: 'removed: use --workers N (every door, DNS included, in N processes)' },
  { key: 'connectTimeoutMs', flag: 'connect-timeout-ms', kind: { t: 'int', min: 1, max: 600_000 }, def: () => 10_000, help: 'upstream connect time-out' },
  { key: 'idleTimeoutMs', flag: 'idle-timeout-ms', kind: { t: 'int', min: 1, max: 86_400_000 }, def: () => 300_000, help: 'idle tunnel/connection time-out' },
  { key: 'headerTimeoutMs', flag: 'header-timeout-ms', kind: { t: 'int', min: 1, max: 600_000 }, def: () => 10_000, help: 'time a client has to send request headers or a handshake' },
  { key: 'maxHeaderBytes', flag: 'max-header-bytes', kind: { t: 'int', min: 1024, max: 1_048_576 }, def: () => 32_768, help: 'largest request head accepted' },
  { key: 'maxConnectionsPerDevbox', flag: 'max-connections-per-devbox', kind: { t: 'int', min: 1, max: 1_000_000 }, def: () => 1024, help: 'concurrent connections per devbox' },
  { key: 'maxClientConnections', flag: 'max-client-connections', kind: { t: 'int', min: 0, max: 10_000_000 }, def: () => 0, help: 'client sockets across the TCP doors (0: derived from the open-file limit, see docs/operations.md)' },
  { key: 'upstreamPoolMax', flag: 'upstream-pool-max', kind: { t: 'int', min: 0, max: 1_000_000 }, def: () => 0, help: 'idle keep-alive sockets to origins in all (0: derived from the open-file limit, at most 1024)' },
  { key: 'upstreamPoolPerDevbox', flag: 'upstream-pool-per-devbox', kind: { t: 'int', min: 0, max: 1_000_000 }, def: () => 32, help: 'idle keep-alive sockets to origins one devbox may hold' },
  { key: 'upstreamPoolIdleMs', flag: 'upstream-pool-idle-ms', kind: { t: 'int', min: 100, max: 600_000 }, def: () => 15_000, help: 'how long an idle keep-alive socket to an origin is kept' },
  { key: 'dnsTcpMax', flag: 'dns-tcp-max', kind: { t: 'int', min: 1, max: 1_000_000 }, def: () => 1024, help: 'DNS-over-TCP connections from devboxes in all (lowered to fit the open-file limit)' },
  { key: 'dnsTcpPerDevbox', flag: 'dns-tcp-per-devbox', kind: { t: 'int', min: 1, max: 1_000_000 }, def: () => 64, help: 'DNS-over-TCP connections one devbox may hold (all its addresses together)' },
  { key: 'maxPoliciesPerAccount', flag: 'max-policies-per-account', kind: { t: 'int', min: 1, max: 10_000_000 }, def: () => 1000, help: 'network policies one account may hold' },
  { key: 'maxEntriesPerPolicy', flag: 'max-entries-per-policy', kind: { t: 'int', min: 1, max: 20_000 }, def: () => 10_000, help: 'allowed_hostnames plus allowed_cidrs entries in one policy' },
  { key: 'maxEntriesPerAccount', flag: 'max-entries-per-account', kind: { t: 'int', min: 1, max: 100_000_000 }, def: () => 100_000, help: "allowed_hostnames plus allowed_cidrs entries over all of one account's policies" },
  { key: 'maxDevboxesPerAccount', flag: 'max-devboxes-per-account', kind: { t: 'int', min: 1, max: 10_000_000 }, def: () => 1000, help: 'running devboxes one account may have registered' },
  { key: 'maxAddressesPerAccount', flag: 'max-addresses-per-account', kind: { t: 'int', min: 1, max: 10_000_000 }, def: () => 4096, help: "source addresses over all of one account's running devboxes" },
  { key: 'apiPageBytes', flag: 'api-page-bytes', kind: { t: 'int', min: 65_536, max: 268_435_456 }, def: () => 4 * 1024 * 1024, help: 'byte budget of one list page (a page stops early, with has_more, when the next item would pass it)' },
  { key: 'eventsRetentionHours', flag: 'events-retention-hours', kind: { t: 'int', min: 1, max: 8760 }, def: () => 168, help: 'hours a denial or would-denial stays in the per-devbox record (GET /v1/egress/events)' },
  { key: 'eventsMaxPerDevbox', flag: 'events-max-per-devbox', kind: { t: 'int', min: 0, max: 100_000 }, def: () => 1000, help: 'distinct destinations the denial record keeps per devbox, newest first (0: record nothing)' },
  { key: 'eventsFlushMs', flag: 'events-flush-ms', kind: { t: 'int', min: 10, max: 60_000 }, def: () => 1000, help: 'how often recorded denials are written to the store, in one batch' },
  { key: 'responseTimeoutMs', flag: 'response-timeout-ms', kind: { t: 'int', min: 1, max: 86_400_000 }, def: () => 60_000, help: 'time an origin has to send its response head after the request went out (then 504)' },
  { key: 'logAllowed', flag: 'log-allowed', kind: { t: 'logAllowed' }, def: () => ({ mode: 'sample', every: 100 }), help: 'allowed connections logged: all, sample:N (one in N), none; denials are always logged' },
  { key: 'logBufferBytes', flag: 'log-buffer-bytes', kind: { t: 'int', min: 65_536, max: 1_073_741_824 }, def: () => 4 * 1024 * 1024, help: 'log bytes held for a slow or stalled stdout; past it lines are dropped and counted' },
  { key: 'nats', flag: 'nats', kind: { t: 'stringOrNull' }, def: () => null, help: 'control plane: publish every committed change to this NATS server (nats://HOST:PORT[,…]) (default: off)' },
  { key: 'follow', flag: 'follow', kind: { t: 'stringOrNull' }, def: () => null, help: 'sidecar: enforce the policies and devboxes of --host-id read from this NATS server (nats://HOST:PORT[,…]); --db holds the last good snapshot (default: off)' },
  { key: 'hostId', flag: 'host-id', kind: { t: 'stringOrNull' }, def: () => null, help: 'with --follow: the host this sidecar serves (the devboxes registered with this network.host_id)' },
  { key: 'natsBucket', flag: 'nats-bucket', kind: { t: 'string' }, def: () => 'egress-policy', help: 'JetStream KV bucket the control plane publishes into and sidecars follow' },
  { key: 'natsUser', flag: 'nats-user', kind: { t: 'stringOrNull' }, def: () => null, help: 'NATS user (with --nats-password)' },
  { key: 'natsPassword', flag: 'nats-password', kind: { t: 'stringOrNull' }, def: () => null, help: 'NATS password (with --nats-user)' },
  { key: 'natsCreds', flag: 'nats-creds', kind: { t: 'stringOrNull' }, def: () => null, help: 'NATS credentials file (JWT + nkey seed)' },
  { key: 'shutdownGraceMs', flag: 'shutdown-grace-ms', kind: { t: 'int', min: 0, max: 600_000 }, def: () => 10_000, help: 'how long shutdown waits for connections to drain' },
];

export function parseHostPort(setting: string, text: string): HostPort {
  const s = text.trim();
  let host: string;
  let portText: string;
  const bracket = /^\[([^\]]+)\]:(\d+)$/.exec(s);
  if (bracket) {
    host = bracket[1]!;
    portText = bracket[2]!;
  } else {
    const i = s.lastIndexOf(':');
    if (i <= 0) throw new ConfigError(setting, `"${text}" is not HOST:PORT`);
    host = s.slice(0, i);
    portText = s.slice(i + 1);
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) throw new ConfigError(setting, `"${text}" has a bad port`);
  if (isIP(host) === 0 && host !== 'localhost') throw new ConfigError(setting, `"${text}": host must be an IP address or localhost`);
  return { host, port: Number(portText) };
}

export function formatHostPort(a: HostPort): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

function resolvConfNameservers(): HostPort[] {
  try {
    const text = readFileSync('/etc/resolv.conf', 'utf8');
    const out: HostPort[] = [];
    for (const line of text.split('\n')) {
      const m = /^\s*nameserver\s+(\S+)/.exec(line);
      if (m && isIP(m[1]!) !== 0) out.push({ host: m[1]!, port: 53 });
    }
    return out;
  } catch {
    return [];
  }
}

function splitList(v: unknown): string[] {
  if (Array.isArray(v)) return v.flatMap((x) => splitList(x));
  if (typeof v !== 'string') return [String(v)];
  return v
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x.length > 0);
}

function convert(spec: OptionSpec, raw: unknown): unknown {
  const setting = `--${spec.flag}`;
  const k = spec.kind;
  switch (k.t) {
    case 'hostport':
      return parseHostPort(setting, String(raw));
    case 'hostportOrOff':
      return raw === null || raw === false || String(raw) === 'off' || String(raw) === '' ? null : parseHostPort(setting, String(raw));
    case 'hostportList':
      return splitList(raw).map((x) => {
        const v = isIP(x);
        if (v === 4) return { host: x, port: 53 };
        if (v === 6) return { host: x, port: 53 };
        return parseHostPort(setting, x);
      });
    case 'string':
      if (String(raw).length === 0) throw new ConfigError(setting, 'must not be empty');
      return String(raw);
    case 'stringOrNull':
      return raw === null || raw === '' ? null : String(raw);
    case 'list':
      return splitList(raw).map((h) => {
        const host = h.toLowerCase();
        const ip = parseIpLiteral(host);
        if (ip) return ip.ip;
        const entry = normalizeAllowedHostname(host);
        if (!entry.ok) throw new ConfigError(setting, `"${h}" ${entry.why}`);
        return entry.entry;
      });
    case 'cidrList':
      return splitList(raw).map((c) => {
        const p = parseCidr(c);
        if ('error' in p) throw new ConfigError(setting, `"${c}" is not a CIDR (${p.error})`);
        return p.text;
      });
    case 'tokens':
      return splitList(raw).map((pair) => {
        const i = pair.lastIndexOf(':');
        if (i <= 0 || i === pair.length - 1) throw new ConfigError(setting, 'expected TOKEN:ACCOUNT_ID');
        return { token: pair.slice(0, i), accountId: pair.slice(i + 1) };
      });
    case 'int': {
      const n = typeof raw === 'number' ? raw : /^-?\d+$/.test(String(raw)) ? Number(raw) : NaN;
      if (!Number.isInteger(n) || n < k.min || n > k.max) throw new ConfigError(setting, `"${String(raw)}" is not a whole number from ${k.min} to ${k.max}`);
      return n;
    }
    case 'logAllowed':
      return parseLogAllowed(setting, raw);
    case 'enum':
      if (!k.values.includes(String(raw))) throw new ConfigError(setting, `"${String(raw)}" is not one of ${k.values.join(', ')}`);
      return String(raw);
  }
}

function parseLogAllowed(setting: string, raw: unknown): LogAllowed {
  if (typeof raw === 'object' && raw !== null && 'mode' in raw) return raw as LogAllowed; // already parsed (a worker's config)
  const s = String(raw);
  if (s === 'all') return { mode: 'all' };
  if (s === 'none') return { mode: 'none' };
  const m = /^sample:(\d{1,9})$/.exec(s);
  if (m && Number(m[1]) >= 1) return Number(m[1]) === 1 ? { mode: 'all' } : { mode: 'sample', every: Number(m[1]) };
  throw new ConfigError(setting, `"${s}" is not all, none or sample:N (N from 1)`);
}

export function formatLogAllowed(l: LogAllowed): string {
  return l.mode === 'sample' ? `sample:${l.every}` : l.mode;
}

export function envName(spec: OptionSpec): string {
  return spec.env ?? `EGRESS_${spec.flag.toUpperCase().replace(/-/g, '_')}`;
}

export const REPEATABLE: ReadonlySet<string> = new Set(['api-token', 'allow-private']);

/** Splits argv into flag values (repeatable flags collect) and positional arguments. */
export function parseArgv(argv: readonly string[], known: ReadonlySet<string>): { flags: Map<string, string[]>; positional: string[] } {
  const flags = new Map<string, string[]>();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) {
      positional.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq === -1 ? a.slice(2) : a.slice(2, eq);
    if (!known.has(name)) throw new ConfigError(`--${name}`, 'unknown flag (see --help)');
    let value: string;
    if (eq !== -1) value = a.slice(eq + 1);
    else if (BOOLEAN_FLAGS.has(name)) value = 'true';
    else {
      const next = argv[i + 1];
      if (next === undefined) throw new ConfigError(`--${name}`, 'needs a value');
      value = next;
      i++;
    }
    const list = flags.get(name) ?? [];
    list.push(value);
    flags.set(name, list);
  }
  return { flags, positional };
}

export const BOOLEAN_FLAGS = new Set(['help', 'prune', 'dry-run', 'json']);

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError('--config', `cannot read ${path}: ${(e as Error).message}`);
  }
  let data: unknown;
  try {
    data = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new ConfigError('--config', `${path} is not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(e as Error).message}`);
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) throw new ConfigError('--config', `${path} must hold an object`);
  return data as Record<string, unknown>;
}

/** Keys a config file may use for a flag: the flag itself, snake_case, or camelCase. */
function fileValue(file: Record<string, unknown>, spec: OptionSpec): unknown {
  for (const k of [spec.flag, spec.flag.replace(/-/g, '_'), spec.key]) if (k in file) return file[k];
  return undefined;
}

export function loadConfig(flags: Map<string, string[]>, env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const configPath = flags.get('config')?.at(-1) ?? env.EGRESS_CONFIG;
  const file = configPath ? readConfigFile(configPath) : {};
  const known = new Set(OPTIONS.map((o) => o.flag));
  for (const k of Object.keys(file)) {
    const ok = OPTIONS.some((o) => k === o.flag || k === o.flag.replace(/-/g, '_') || k === o.key);
    if (!ok && !known.has(k)) throw new ConfigError(`--config`, `unknown setting "${k}" in ${configPath}`);
  }
  const out: Record<string, unknown> = {};
  for (const spec of OPTIONS) {
    const fromFlag = flags.get(spec.flag);
    const fromEnv = env[envName(spec)];
    const fromFile = fileValue(file, spec);
    let raw: unknown;
    if (fromFlag !== undefined) raw = REPEATABLE.has(spec.flag) ? fromFlag : fromFlag.at(-1);
    else if (fromEnv !== undefined) raw = fromEnv;
    else if (fromFile !== undefined) raw = fromFile;
    out[spec.key] = raw === undefined ? spec.def() : convert(spec, raw);
  }
  const cfg = out as unknown as GatewayConfig;
  if ((cfg.apiTlsCert === null) !== (cfg.apiTlsKey === null)) throw new ConfigError('--api-tls-key', 'give --api-tls-cert and --api-tls-key together');
  if (cfg.dnsMinTtl > cfg.dnsMaxTtl) throw new ConfigError('--dns-min-ttl', 'must not exceed --dns-max-ttl');
  checkFleet(cfg);
  if (cfg.dnsWorkers !== null) {
    throw new ConfigError('--dns-workers', `was replaced by --workers N, which runs every door (DNS over UDP and TCP, the proxies, SOCKS5, the transparent doors) in N processes; use --workers ${cfg.dnsWorkers + 1}`);
  }
  return cfg;
}

/** NATS server lists: nats:// or tls:// URLs, comma-separated. */
const NATS_URL = /^(nats|tls):\/\/[^\s,/]+$/;

function checkFleet(cfg: GatewayConfig): void {
  for (const [flag, v] of [
    ['--nats', cfg.nats],
    ['--follow', cfg.follow],
  ] as const) {
    if (v !== null && !v.split(',').every((u) => NATS_URL.test(u.trim()))) throw new ConfigError(flag, `"${v}" is not nats://HOST:PORT[,nats://HOST:PORT…]`);
  }
  if (cfg.nats !== null && cfg.follow !== null) throw new ConfigError('--follow', 'a process either publishes (--nats, control plane) or follows (--follow, sidecar), not both');
  if (cfg.follow !== null && cfg.hostId === null) throw new ConfigError('--host-id', 'required with --follow: the host whose devboxes this sidecar serves');
  if (cfg.hostId !== null && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/.test(cfg.hostId)) throw new ConfigError('--host-id', `"${cfg.hostId}" is not a host name (letters, digits, . _ -; at most 253)`);
  if ((cfg.natsUser === null) !== (cfg.natsPassword === null)) throw new ConfigError('--nats-password', 'give --nats-user and --nats-password together');
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(cfg.natsBucket)) throw new ConfigError('--nats-bucket', `"${cfg.natsBucket}" is not a bucket name (letters, digits, _ -)`);
}

/** A database URL's password is never logged (a sqlite path is shown as given). */
export function withoutPassword(db: string): string {
  if (!/^postgres(ql)?:\/\//i.test(db)) return db;
  try {
    const u = new URL(db);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://(unparsable URL)';
  }
}

/** The effective settings for the start-up line: every setting by flag name, secrets shown only as a count. */
export function describeConfig(cfg: GatewayConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const o of OPTIONS) out[o.flag] = showSetting(o.key, cfg[o.key]);
  return out;
}

function showSetting(key: keyof GatewayConfig, v: unknown): unknown {
  if (key === 'apiTokens') return `${(v as ApiToken[]).length} configured`;
  if (key === 'natsPassword') return v === null ? null : '(set)';
  if (key === 'db') return withoutPassword(v as string);
  if (key === 'logAllowed') return formatLogAllowed(v as LogAllowed);
  if (v !== null && typeof v === 'object' && 'port' in v) return formatHostPort(v as HostPort);
  if (Array.isArray(v)) return v.map((x) => (x !== null && typeof x === 'object' && 'port' in x ? formatHostPort(x as HostPort) : x));
  return v;
}

/** Settings SIGHUP applies from the config file; any other change needs a restart. */
export const RELOADABLE: ReadonlySet<keyof GatewayConfig> = new Set<keyof GatewayConfig>(['apiTokens', 'allowPrivate', 'agentGatewayHosts', 'mcpGatewayHosts', 'mirrorHosts', 'logLevel', 'dnsRateLimit']);

/** The flags whose effective value differs between two configurations, reloadable or not. */
export function configChanges(a: GatewayConfig, b: GatewayConfig): { reloadable: string[]; restart: string[] } {
  const reloadable: string[] = [];
  const restart: string[] = [];
  for (const o of OPTIONS) {
    if (JSON.stringify(a[o.key]) === JSON.stringify(b[o.key])) continue;
    (RELOADABLE.has(o.key) ? reloadable : restart).push(`--${o.flag}`);
  }
  return { reloadable, restart };
}

/** A setting's default as --help shows it. */
export function defaultText(o: OptionSpec): string {
  const v = showSetting(o.key, o.def());
  if (v === null) return o.kind.t === 'hostportOrOff' ? 'off' : 'none';
  if (Array.isArray(v)) return v.length === 0 ? 'none' : v.join(',');
  return String(v);
}

/** The engine options the gateway's settings give (serve, DNS workers and `check` alike). */
export function engineOptions(config: Pick<GatewayConfig, 'agentGatewayHosts' | 'mcpGatewayHosts' | 'mirrorHosts' | 'allowPrivate' | 'tunnelDomain'> & Partial<Pick<GatewayConfig, 'dnsLearnPerDevbox'>>): EngineOptions {
  return {
    toggles: { agentGateway: config.agentGatewayHosts, mcpGateway: config.mcpGatewayHosts, mirrors: config.mirrorHosts },
    allowPrivate: config.allowPrivate,
    tunnelDomain: config.tunnelDomain,
    learnedPerDevbox: config.dnsLearnPerDevbox,
  };
}
