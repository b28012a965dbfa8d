/**
 * The gateway's settings: one table, OPTIONS (per setting its key, flag, kind, default and
 * help), from which the `GatewayConfig` type, the command line's flags (main.ts), env names,
 * config-file keys, --help and the start-up line all derive. Flags, environment and config
 * file fold into one object: flag > env (EGRESS_<FLAG_IN_UPPER_SNAKE>) > --config file (JSON
 * or YAML) > default. RELOADABLE names what a SIGHUP can change.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { isIP } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { parseCidr, parseIpLiteral } from './policy/ip.js';
import { normalizeAllowedHostname } from './policy/hostname.js';
import type { EngineOptions } from './policy/engine.js';
import { ConfigError } from './config-error.js';
import { type HostPort, formatHostPort, parseHostPort } from './host-port.js';

export { ConfigError } from './config-error.js';
export { type HostPort, formatHostPort, parseHostPort } from './host-port.js';

export interface ApiToken {
  token: string;
  accountId: string;
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
  | { t: 'intOrNull'; min: number; max: number }
  | { t: 'logAllowed' }
  | { t: 'enum'; values: readonly string[] };

/** The value a setting of each kind holds once read (an enum: one of its values). */
interface KindValues {
  hostport: HostPort;
  hostportOrOff: HostPort | null;
  hostportList: HostPort[];
  string: string;
  stringOrNull: string | null;
  list: string[];
  cidrList: string[];
  tokens: ApiToken[];
  int: number;
  intOrNull: number | null;
  logAllowed: LogAllowed;
  enum: string;
}

type ValueOf<K extends Kind> = K extends { t: 'enum'; values: readonly (infer V)[] } ? V : KindValues[K['t']];

/** One setting: its key in GatewayConfig, its flag, how its text is read, its default and --help line. */
interface Row<Key extends string, K extends Kind> {
  key: Key;
  flag: string;
  kind: K;
  def: () => ValueOf<K>;
  help: string;
  /** Env var name when it is not EGRESS_<FLAG_IN_UPPER_SNAKE>. */
  env?: string;
}

/** A row of OPTIONS (keeps its key and kind for GatewayConfig; tsc checks the default against the kind). */
function opt<const Key extends string, const K extends Kind>(row: Row<Key, K>): Row<Key, K> {
  return row;
}

const hp = (s: string): HostPort => parseHostPort('default', s);

export const OPTIONS = [
  opt({ key: 'api', flag: 'api', kind: { t: 'hostport' }, def: () => hp('127.0.0.1:8080'), help: 'admin REST API, /metrics, /healthz, /openapi.json' }),
  opt({ key: 'apiTlsCert', flag: 'api-tls-cert', kind: { t: 'stringOrNull' }, def: () => null, help: 'PEM certificate: serve the API over TLS (h2 + http/1.1 by ALPN)' }),
  opt({ key: 'apiTlsKey', flag: 'api-tls-key', kind: { t: 'stringOrNull' }, def: () => null, help: 'PEM private key for --api-tls-cert' }),
  opt({ key: 'httpProxy', flag: 'http-proxy', kind: { t: 'hostportOrOff' }, def: () => hp('127.0.0.1:3128'), help: 'HTTP forward proxy with CONNECT ("off" to disable)' }),
  opt({ key: 'socks', flag: 'socks', kind: { t: 'hostportOrOff' }, def: () => hp('127.0.0.1:1080'), help: 'SOCKS5 proxy ("off" to disable)' }),
  opt({ key: 'dns', flag: 'dns', kind: { t: 'hostportOrOff' }, def: () => hp('127.0.0.1:5353'), help: 'filtering DNS resolver, UDP and TCP ("off" to disable)' }),
  opt({ key: 'transparentTls', flag: 'transparent-tls', kind: { t: 'hostportOrOff' }, def: () => null, help: 'transparent TLS listener, decides on SNI (off unless given)' }),
  opt({ key: 'transparentHttp', flag: 'transparent-http', kind: { t: 'hostportOrOff' }, def: () => null, help: 'transparent HTTP listener, decides on Host (off unless given)' }),
  opt({ key: 'agentGateway', flag: 'agent-gateway', kind: { t: 'hostportOrOff' }, def: () => hp('127.0.0.1:8090'), help: 'agent gateway: a devbox calls external APIs with a gateway token, the real credential is applied here ("off" to disable)' }),
  opt({ key: 'agentGatewayUrl', flag: 'agent-gateway-url', kind: { t: 'stringOrNull' }, def: () => null, help: 'URL devboxes use to reach the agent gateway, put in minted tokens (default: http:// + the --agent-gateway address)' }),
  opt({ key: 'mcpHub', flag: 'mcp-hub', kind: { t: 'hostportOrOff' }, def: () => hp('127.0.0.1:8091'), help: 'MCP hub: MCP Streamable HTTP to upstream MCP servers with tool-level access control ("off" to disable)' }),
  opt({ key: 'mcpHubUrl', flag: 'mcp-hub-url', kind: { t: 'stringOrNull' }, def: () => null, help: 'URL devboxes use to reach the MCP hub, put in minted tokens (default: http:// + the --mcp-hub address)' }),
  opt({ key: 'upstreamCaFile', flag: 'upstream-ca-file', kind: { t: 'stringOrNull' }, def: () => null, help: 'PEM CA certificates trusted, beside the system CAs, for the agent gateway and MCP hub upstreams' }),
  opt({ key: 'secretsKeyFile', flag: 'secrets-key-file', kind: { t: 'stringOrNull' }, def: () => null, help: 'AES-256-GCM key for secrets at rest, made 0600 at first start (default: secrets.key beside a sqlite --db)' }),
  opt({ key: 'transparentTlsUpstreamPort', flag: 'transparent-tls-upstream-port', kind: { t: 'int', min: 1, max: 65535 }, def: () => 443, help: 'port the transparent TLS door dials on the checked address' }),
  opt({ key: 'transparentHttpUpstreamPort', flag: 'transparent-http-upstream-port', kind: { t: 'int', min: 1, max: 65535 }, def: () => 80, help: 'port the transparent HTTP door dials on the checked address' }),
  opt({ key: 'upstreamDns', flag: 'upstream-dns', kind: { t: 'hostportList' }, def: resolvConfNameservers, help: 'upstream resolvers HOST:PORT[,HOST:PORT…] (default: /etc/resolv.conf)' }),
  opt({ key: 'db', flag: 'db', kind: { t: 'string' }, def: () => './data/egress.db', help: 'the store: a sqlite file (created with its folder), or postgres://USER[:PASSWORD]@HOST:PORT/DB (also postgresql://) for the control plane on PostgreSQL' }),
  opt({ key: 'apiTokens', flag: 'api-token', env: 'EGRESS_API_TOKENS', kind: { t: 'tokens' }, def: () => [], help: 'TOKEN:ACCOUNT_ID, repeatable' }),
  opt({ key: 'allowPrivate', flag: 'allow-private', kind: { t: 'cidrList' }, def: () => [], help: 'CIDR exempt from the private-address guardrail, repeatable' }),
  opt({ key: 'agentGatewayHosts', flag: 'agent-gateway-hosts', kind: { t: 'list' }, def: () => [], help: 'hosts allow_agent_gateway admits (comma-separated)' }),
  opt({ key: 'mcpGatewayHosts', flag: 'mcp-gateway-hosts', kind: { t: 'list' }, def: () => [], help: 'hosts allow_mcp_gateway admits' }),
  opt({ key: 'mirrorHosts', flag: 'mirror-hosts', kind: { t: 'list' }, def: () => [], help: 'hosts allow_runloop_mirrors admits' }),
  opt({ key: 'tunnelDomain', flag: 'tunnel-domain', kind: { t: 'string' }, def: () => 'tunnel.runloop.ai', help: 'devbox tunnel domain for allow_devbox_to_devbox' }),
  opt({ key: 'logLevel', flag: 'log-level', kind: { t: 'enum', values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] }, def: () => 'info', help: 'log level' }),
  opt({ key: 'dnsDenyRcode', flag: 'dns-deny-rcode', kind: { t: 'enum', values: ['nxdomain', 'refused'] }, def: () => 'nxdomain', help: 'answer for denied names' }),
  opt({ key: 'dnsMinTtl', flag: 'dns-min-ttl', kind: { t: 'int', min: 0, max: 86400 }, def: () => 5, help: 'lowest TTL the answer cache keeps (s)' }),
  opt({ key: 'dnsMaxTtl', flag: 'dns-max-ttl', kind: { t: 'int', min: 1, max: 604800 }, def: () => 3600, help: 'highest TTL the answer cache keeps (s)' }),
  opt({ key: 'dnsFailureTtl', flag: 'dns-failure-ttl', kind: { t: 'int', min: 1, max: 300 }, def: () => 5, help: 'seconds a resolution failure (upstream SERVFAIL, REFUSED, time-out) is cached per name and type, per account (RFC 9520)' }),
  opt({ key: 'dnsLearnGrace', flag: 'dns-learn-grace', kind: { t: 'int', min: 0, max: 86400 }, def: () => 60, help: 'seconds past TTL a DNS-learned address stays admitted' }),
  opt({ key: 'dnsRateLimit', flag: 'dns-rate-limit', kind: { t: 'int', min: 0, max: 10_000_000 }, def: () => 2000, help: 'DNS queries per second per devbox, all its addresses together (per source address for unknown clients; 0: unlimited)' }),
  opt({ key: 'dnsCacheSize', flag: 'dns-cache-size', kind: { t: 'int', min: 1, max: 10_000_000 }, def: () => 20_000, help: 'answers the DNS cache holds (name/type/class)' }),
  opt({ key: 'dnsCacheBytes', flag: 'dns-cache-bytes', kind: { t: 'int', min: 65_536, max: 17_179_869_184 }, def: () => 32 * 1024 * 1024, help: "bytes the DNS answer cache holds in all, per host (past it the largest account's oldest answers go)" }),
  opt({ key: 'dnsCacheBytesPerAccount', flag: 'dns-cache-bytes-per-account', kind: { t: 'int', min: 65_536, max: 17_179_869_184 }, def: () => 4 * 1024 * 1024, help: "bytes of DNS answers one account's partition of the cache holds" }),
  opt({ key: 'dnsLearnPerAnswer', flag: 'dns-learn-per-answer', kind: { t: 'int', min: 1, max: 65_535 }, def: () => 32, help: 'addresses of one DNS answer a devbox learns (may then dial by address); the answer is still served whole, the rest counted as dropped' }),
  opt({ key: 'dnsLearnPerDevbox', flag: 'dns-learn-per-devbox', kind: { t: 'int', min: 1, max: 1_000_000 }, def: () => 4096, help: 'DNS-learned addresses one devbox holds at once; past it new ones are dropped (counted) until old ones expire' }),
  opt({ key: 'dnsUpstreamTimeoutMs', flag: 'dns-upstream-timeout-ms', kind: { t: 'int', min: 10, max: 60_000 }, def: () => 1000, help: 'time one upstream has to answer before the next is tried' }),
  opt({
    key: 'workers',
    flag: 'workers',
    kind: { t: 'int', min: 1, max: 256 },
    def: () => 1,
    help: 'processes running every door, sharing each listener (1: this process alone, the sidecar default; N > 1: N door processes beside a primary holding the store, the API and the DNS cache, see docs/operations.md)',
  }),
  opt({ key: 'dnsWorkers', flag: 'dns-workers', kind: { t: 'intOrNull', min: 0, max: 64 }, def: () => null, help: 'removed: use --workers N (every door, DNS included, in N processes)' }),
  opt({ key: 'connectTimeoutMs', flag: 'connect-timeout-ms', kind: { t: 'int', min: 1, max: 600_000 }, def: () => 10_000, help: 'upstream connect time-out' }),
  opt({ key: 'idleTimeoutMs', flag: 'idle-timeout-ms', kind: { t: 'int', min: 1, max: 86_400_000 }, def: () => 300_000, help: 'idle tunnel/connection time-out' }),
  opt({ key: 'tlsEch', flag: 'tls-ech', kind: { t: 'enum', values: ['relay', 'refuse'] }, def: () => 'relay', help: 'ClientHellos with ECH: relay (judged by the outer SNI; browsers work) or refuse (strict: breaks Chromium/Firefox unless their ECH is off)' }),
  opt({ key: 'headerTimeoutMs', flag: 'header-timeout-ms', kind: { t: 'int', min: 1, max: 600_000 }, def: () => 10_000, help: 'time a client has to send request headers or a handshake' }),
  opt({ key: 'maxHeaderBytes', flag: 'max-header-bytes', kind: { t: 'int', min: 1024, max: 1_048_576 }, def: () => 32_768, help: 'largest request head accepted' }),
  opt({ key: 'maxConnectionsPerDevbox', flag: 'max-connections-per-devbox', kind: { t: 'int', min: 1, max: 1_000_000 }, def: () => 1024, help: 'concurrent connections per devbox' }),
  opt({ key: 'maxClientConnections', flag: 'max-client-connections', kind: { t: 'int', min: 0, max: 10_000_000 }, def: () => 0, help: 'client sockets across the TCP doors (0: derived from the open-file limit, see docs/operations.md)' }),
  opt({ key: 'upstreamPoolMax', flag: 'upstream-pool-max', kind: { t: 'int', min: 0, max: 1_000_000 }, def: () => 0, help: 'idle keep-alive sockets to origins in all (0: derived from the open-file limit, at most 1024)' }),
  opt({ key: 'upstreamPoolPerDevbox', flag: 'upstream-pool-per-devbox', kind: { t: 'int', min: 0, max: 1_000_000 }, def: () => 32, help: 'idle keep-alive sockets to origins one devbox may hold' }),
  opt({ key: 'upstreamPoolIdleMs', flag: 'upstream-pool-idle-ms', kind: { t: 'int', min: 100, max: 600_000 }, def: () => 15_000, help: 'how long an idle keep-alive socket to an origin is kept' }),
  opt({ key: 'dnsTcpMax', flag: 'dns-tcp-max', kind: { t: 'int', min: 1, max: 1_000_000 }, def: () => 1024, help: 'DNS-over-TCP connections from devboxes in all (lowered to fit the open-file limit)' }),
  opt({ key: 'dnsTcpPerDevbox', flag: 'dns-tcp-per-devbox', kind: { t: 'int', min: 1, max: 1_000_000 }, def: () => 64, help: 'DNS-over-TCP connections one devbox may hold (all its addresses together)' }),
  opt({ key: 'maxPoliciesPerAccount', flag: 'max-policies-per-account', kind: { t: 'int', min: 1, max: 10_000_000 }, def: () => 1000, help: 'network policies one account may hold' }),
  opt({ key: 'maxEntriesPerPolicy', flag: 'max-entries-per-policy', kind: { t: 'int', min: 1, max: 20_000 }, def: () => 10_000, help: 'allowed_hostnames plus allowed_cidrs entries in one policy' }),
  opt({ key: 'maxEntriesPerAccount', flag: 'max-entries-per-account', kind: { t: 'int', min: 1, max: 100_000_000 }, def: () => 100_000, help: "allowed_hostnames plus allowed_cidrs entries over all of one account's policies" }),
  opt({ key: 'maxDevboxesPerAccount', flag: 'max-devboxes-per-account', kind: { t: 'int', min: 1, max: 10_000_000 }, def: () => 1000, help: 'running devboxes one account may have registered' }),
  opt({ key: 'maxAddressesPerAccount', flag: 'max-addresses-per-account', kind: { t: 'int', min: 1, max: 10_000_000 }, def: () => 4096, help: "source addresses over all of one account's running devboxes and active blueprint builds" }),
  opt({ key: 'maxBlueprintsPerAccount', flag: 'max-blueprints-per-account', kind: { t: 'int', min: 1, max: 10_000_000 }, def: () => 100, help: 'blueprints one account may hold (every status; each at most 128 KiB of parameters)' }),
  opt({ key: 'apiPageBytes', flag: 'api-page-bytes', kind: { t: 'int', min: 65_536, max: 268_435_456 }, def: () => 4 * 1024 * 1024, help: 'byte budget of one list page (a page stops early, with has_more, when the next item would pass it)' }),
  opt({ key: 'eventsRetentionHours', flag: 'events-retention-hours', kind: { t: 'int', min: 1, max: 8760 }, def: () => 168, help: 'hours a denial or would-denial stays in the per-devbox record (GET /v1/egress/events)' }),
  opt({ key: 'eventsMaxPerDevbox', flag: 'events-max-per-devbox', kind: { t: 'int', min: 0, max: 100_000 }, def: () => 1000, help: 'distinct destinations the denial record keeps per devbox, newest first (0: record nothing)' }),
  opt({ key: 'eventsFlushMs', flag: 'events-flush-ms', kind: { t: 'int', min: 10, max: 60_000 }, def: () => 1000, help: 'how often recorded denials are written to the store, in one batch' }),
  opt({ key: 'responseTimeoutMs', flag: 'response-timeout-ms', kind: { t: 'int', min: 1, max: 86_400_000 }, def: () => 60_000, help: 'time an origin has to send its response head after the request went out (then 504)' }),
  opt({ key: 'logAllowed', flag: 'log-allowed', kind: { t: 'logAllowed' }, def: () => ({ mode: 'sample', every: 100 }), help: 'allowed connections logged: all, sample:N (one in N), none; denials are always logged' }),
  opt({ key: 'logBufferBytes', flag: 'log-buffer-bytes', kind: { t: 'int', min: 65_536, max: 1_073_741_824 }, def: () => 4 * 1024 * 1024, help: 'log bytes held for a slow or stalled stdout; past it lines are dropped and counted' }),
  opt({ key: 'nats', flag: 'nats', kind: { t: 'stringOrNull' }, def: () => null, help: 'control plane: publish every committed change to this NATS server (nats://HOST:PORT[,…]) (default: off)' }),
  opt({ key: 'follow', flag: 'follow', kind: { t: 'stringOrNull' }, def: () => null, help: 'sidecar: enforce the policies and devboxes of --host-id read from this NATS server (nats://HOST:PORT[,…]); --db holds the last good snapshot (default: off)' }),
  opt({ key: 'hostId', flag: 'host-id', kind: { t: 'stringOrNull' }, def: () => null, help: 'with --follow: the host this sidecar serves (the devboxes registered with this network.host_id)' }),
  opt({ key: 'natsBucket', flag: 'nats-bucket', kind: { t: 'string' }, def: () => 'egress-policy', help: 'JetStream KV bucket the control plane publishes into and sidecars follow' }),
  opt({ key: 'natsUser', flag: 'nats-user', kind: { t: 'stringOrNull' }, def: () => null, help: 'NATS user (with --nats-password)' }),
  opt({ key: 'natsPassword', flag: 'nats-password', kind: { t: 'stringOrNull' }, def: () => null, help: 'NATS password (with --nats-user)' }),
  opt({ key: 'natsCreds', flag: 'nats-creds', kind: { t: 'stringOrNull' }, def: () => null, help: 'NATS credentials file (JWT + nkey seed)' }),
  opt({ key: 'fleetSigningKey', flag: 'fleet-signing-key', kind: { t: 'stringOrNull' }, def: () => null, help: 'with --nats: Ed25519 private key (PKCS#8 PEM) that signs every fleet bucket value (default: unsigned)' }),
  opt({ key: 'fleetVerifyKeys', flag: 'fleet-verify-keys', kind: { t: 'stringOrNull' }, def: () => null, help: 'with --follow: Ed25519 public keys (PEM files, comma-separated) a bucket value must be signed by; with --nats: also trusted while keys rotate' }),
  opt({ key: 'maxStaleness', flag: 'max-staleness', kind: { t: 'int', min: 1, max: 86_400 }, def: () => 30, help: 'with --follow: seconds since the newest control-plane heartbeat after which the sidecar is not ready' }),
  opt({ key: 'stale', flag: 'stale', kind: { t: 'enum', values: ['fail-static', 'fail-closed'] }, def: () => 'fail-static', help: 'with --follow, past --max-staleness: fail-static keeps enforcing the last snapshot, fail-closed refuses new connections' }),
  opt({ key: 'shutdownGraceMs', flag: 'shutdown-grace-ms', kind: { t: 'int', min: 0, max: 600_000 }, def: () => 10_000, help: 'how long shutdown waits for connections to drain' }),
];

type Option = (typeof OPTIONS)[number];

/** Every setting, typed from its row in OPTIONS. */
export type GatewayConfig = { [O in Option as O['key']]: ValueOf<O['kind']> };

/** A row of OPTIONS, whichever setting it is. */
export type OptionSpec = Option;

/** The flag (without --) of a setting. */
export function flagOf(key: keyof GatewayConfig): string {
  const o = OPTIONS.find((x) => x.key === key);
  if (o === undefined) throw new Error(`no option row for setting ${key}`);
  return o.flag;
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
  const k: Kind = spec.kind;
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
    case 'int':
    case 'intOrNull': {
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

/** Characters a NATS server's user:password or host:port cannot hold. */
const NOT_IN_SERVER = /[@\s,/]/;

/** One server of a list split as scheme, `user:password` (undefined: none) and host:port; null when it is not one. */
function splitNatsServer(raw: string): [scheme: string, userinfo: string | undefined, host: string] | null {
  const scheme = /^(?:nats|tls):\/\//.exec(raw)?.[0];
  if (scheme === undefined) return null;
  const rest = raw.slice(scheme.length);
  const at = rest.indexOf('@');
  const userinfo = at < 0 ? undefined : rest.slice(0, at);
  const host = at < 0 ? rest : rest.slice(at + 1);
  if (host.length === 0 || NOT_IN_SERVER.test(host) || (userinfo !== undefined && NOT_IN_SERVER.test(userinfo))) return null;
  return [scheme, userinfo, host];
}

/** A NATS URL list as it may be shown: any `user:password@` replaced by `***@`. */
export function natsForDisplay(v: string): string {
  return v.replace(/(\/\/)[^@\s,/]*@/g, '$1***@');
}

/**
 * The servers of --nats / --follow without credentials; `user:password@` in them becomes
 * --nats-user / --nats-password (the NATS client takes them only that way), so no credential
 * is ever logged or shown with the URL. A token (`nats://TOKEN@…`) or servers with different
 * credentials are refused.
 */
function takeNatsCredentials(cfg: GatewayConfig, flag: '--nats' | '--follow', v: string): string {
  const servers: string[] = [];
  let creds: { user: string; pass: string } | null = null;
  for (const raw of v.split(',')) {
    const m = splitNatsServer(raw.trim());
    if (!m || !NATS_URL.test(`${m[0]}${m[2]}`)) throw new ConfigError(flag, `"${natsForDisplay(v)}" is not nats://[USER:PASSWORD@]HOST:PORT[,…]`);
    servers.push(`${m[0]}${m[2]}`);
    const userinfo = m[1];
    if (userinfo === undefined) continue;
    const at = userinfo.indexOf(':');
    if (at < 0) throw new ConfigError(flag, 'a token in the URL is not supported: give --nats-user and --nats-password, or --nats-creds');
    let c: { user: string; pass: string };
    try {
      c = { user: decodeURIComponent(userinfo.slice(0, at)), pass: decodeURIComponent(userinfo.slice(at + 1)) };
    } catch {
      throw new ConfigError(flag, 'the user:password in the URL is not valid percent-encoding');
    }
    if (creds !== null && (creds.user !== c.user || creds.pass !== c.pass)) throw new ConfigError(flag, 'every server in the list must carry the same user:password (or none)');
    creds = c;
  }
  if (creds !== null) {
    if ((cfg.natsUser !== null && cfg.natsUser !== creds.user) || (cfg.natsPassword !== null && cfg.natsPassword !== creds.pass)) {
      throw new ConfigError(flag, 'the user:password in the URL differs from --nats-user / --nats-password: give them once');
    }
    if (cfg.natsCreds !== null) throw new ConfigError(flag, 'give either user:password in the URL or --nats-creds, not both');
    cfg.natsUser = creds.user;
    cfg.natsPassword = creds.pass;
  }
  return servers.join(',');
}

function checkFleet(cfg: GatewayConfig): void {
  if (cfg.nats !== null) cfg.nats = takeNatsCredentials(cfg, '--nats', cfg.nats);
  if (cfg.follow !== null) cfg.follow = takeNatsCredentials(cfg, '--follow', cfg.follow);
  if (cfg.fleetSigningKey !== null && cfg.nats === null) throw new ConfigError('--fleet-signing-key', 'only a control plane publishing to NATS (--nats) signs');
  if (cfg.fleetVerifyKeys !== null && cfg.nats === null && cfg.follow === null) throw new ConfigError('--fleet-verify-keys', 'needs --follow (a sidecar) or --nats (a control plane)');
  if (cfg.nats !== null && cfg.follow !== null) throw new ConfigError('--follow', 'a process either publishes (--nats, control plane) or follows (--follow, sidecar), not both');
  if (cfg.follow !== null && cfg.stale === 'fail-closed' && cfg.workers > 1) throw new ConfigError('--stale', 'fail-closed needs --workers 1 on a sidecar (the snapshot age is kept in the process that follows NATS)');
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
export const RELOADABLE = ['apiTokens', 'allowPrivate', 'agentGatewayHosts', 'mcpGatewayHosts', 'mirrorHosts', 'logLevel', 'dnsRateLimit'] as const satisfies readonly (keyof GatewayConfig)[];
const RELOADABLE_KEYS: ReadonlySet<string> = new Set(RELOADABLE);

/** What a SIGHUP can change: the gateway and each door take these, and only these, from a new configuration. */
export type Reloadable = Readonly<Pick<GatewayConfig, (typeof RELOADABLE)[number]>>;

/** The reloadable settings of a configuration (tsc fails here when RELOADABLE grows and this does not). */
export function reloadableOf(c: Reloadable): Reloadable {
  return { apiTokens: c.apiTokens, allowPrivate: c.allowPrivate, agentGatewayHosts: c.agentGatewayHosts, mcpGatewayHosts: c.mcpGatewayHosts, mirrorHosts: c.mirrorHosts, logLevel: c.logLevel, dnsRateLimit: c.dnsRateLimit };
}

/** The running configuration after a SIGHUP: `current` with the reloadable settings of `next`; every other setting as started. */
export function withReloaded(current: GatewayConfig, next: Reloadable): GatewayConfig {
  return { ...current, ...reloadableOf(next) };
}

/** The flags whose effective value differs between two configurations, reloadable or not. */
export function configChanges(a: GatewayConfig, b: GatewayConfig): { reloadable: string[]; restart: string[] } {
  const reloadable: string[] = [];
  const restart: string[] = [];
  for (const o of OPTIONS) {
    if (JSON.stringify(a[o.key]) === JSON.stringify(b[o.key])) continue;
    (RELOADABLE_KEYS.has(o.key) ? reloadable : restart).push(`--${o.flag}`);
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

/** The secrets key file: --secrets-key-file, else beside the sqlite --db (./data/ for PostgreSQL). */
export function secretsKeyPath(config: Pick<GatewayConfig, 'secretsKeyFile' | 'db'>): string {
  if (config.secretsKeyFile !== null) return config.secretsKeyFile;
  return /^postgres(ql)?:\/\//i.test(config.db) ? './data/secrets.key' : join(dirname(config.db), 'secrets.key');
}
