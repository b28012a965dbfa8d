/**
 * `egress-gateway firewall`: prints the nftables ruleset that makes the gateway the only way
 * out of a devbox. Devbox TCP 80/443 is redirected (DNAT) to the transparent HTTP/TLS doors,
 * UDP+TCP 53 (to any resolver) to the DNS door; the devbox may reach the gateway's proxy
 * ports on --gateway-addr; everything else it sends — forwarded or to the host — is dropped
 * (QUIC on UDP 443 and DNS to other resolvers included). A door that is off gets no redirect:
 * its traffic is dropped, never sent to a port nobody listens on. A devbox range of every
 * address or the host's default-route interface would capture the host's own traffic: refused
 * unless --force. Load with `nft -f`; the rendered
 * file deletes and recreates its own table, so reloading is idempotent.
 */
import { isIP } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { ConfigError, loadConfig, type HostPort } from '../config.js';
import { parseCidr } from '../policy/ip.js';

export interface FirewallPorts {
  /** Doors that are off (null) get no redirect: that traffic is dropped, never sent to a port nobody listens on. */
  transparentTls: number | null;
  transparentHttp: number | null;
  dns: number | null;
  /** Explicit-proxy ports the devbox may reach directly (null: not exposed). */
  httpProxy: number | null;
  socks: number | null;
  /** The agent gateway and MCP hub: a devbox reaches them directly with its token (null: not exposed). */
  agentGateway: number | null;
  mcpHub: number | null;
}

export interface FirewallOptions {
  /** nftables table name (family inet). */
  table: string;
  /** Devbox source ranges (IPv4 and/or IPv6). */
  devboxCidrs: string[];
  /** Devbox-facing interfaces (nft iifname patterns, `veth*` allowed). */
  interfaces: string[];
  /** IPv4 address of the host the devboxes reach the gateway at; the doors must listen on it (or 0.0.0.0). */
  gatewayAddr: string;
  ports: FirewallPorts;
  /** Render a devbox range or interface that would also capture the host's own traffic. */
  force?: boolean;
  /** The host's default-route interfaces (read from /proc when not given). */
  uplinks?: string[];
}

/** The container image's (Dockerfile) door ports. */
export const DEFAULT_PORTS: FirewallPorts = { transparentTls: 8443, transparentHttp: 8081, dns: 5353, httpProxy: 3128, socks: 1080, agentGateway: 8090, mcpHub: 8091 };
export const DEFAULT_TABLE = 'egress_gateway';

const TABLE_RE = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
const IFACE_RE = /^[A-Za-z0-9_.:@+-]{1,15}\*?$|^[A-Za-z0-9_.:@+-]{0,14}\*$/;

export function validateFirewallOptions(o: FirewallOptions): FirewallOptions {
  if (!TABLE_RE.test(o.table)) throw new ConfigError('--table', `"${o.table}" is not a valid nftables table name`);
  if (isIP(o.gatewayAddr) !== 4) throw new ConfigError('--gateway-addr', `"${o.gatewayAddr}" must be an IPv4 address on this host`);
  if (o.devboxCidrs.length === 0 && o.interfaces.length === 0) throw new ConfigError('--devbox-cidr', 'give at least one --devbox-cidr (and optionally --interface)');
  const cidrs = o.devboxCidrs.map((c) => {
    const p = parseCidr(c);
    if ('error' in p) throw new ConfigError('--devbox-cidr', `"${c}" is not a CIDR (${p.error})`);
    return p.text;
  });
  for (const i of o.interfaces) if (!IFACE_RE.test(i)) throw new ConfigError('--interface', `"${i}" is not an interface name (at most 15 characters, optional trailing *)`);
  if (!o.force) {
    for (const c of cidrs) {
      if (c.endsWith('/0')) throw new ConfigError('--devbox-cidr', `"${c}" is every address: the host's own traffic would be redirected and dropped too (add --force if that is meant)`);
    }
    const uplinks = o.uplinks ?? defaultRouteInterfaces();
    for (const i of o.interfaces) {
      const hit = uplinks.find((u) => (i.endsWith('*') ? u.startsWith(i.slice(0, -1)) : u === i));
      if (hit !== undefined) throw new ConfigError('--interface', `"${i}" matches ${hit}, this host's default-route (uplink) interface: its own traffic would be redirected and dropped (add --force if that is meant)`);
    }
  }
  for (const [k, v] of Object.entries(o.ports)) {
    if (v === null) continue;
    if (!Number.isInteger(v) || v < 1 || v > 65535) throw new ConfigError(`--${k}`, `port ${v} must be 1-65535 (a listener on port 0 needs its real port here)`);
  }
  return { ...o, devboxCidrs: cidrs };
}

/** Interfaces that carry a default route (IPv4 and IPv6), from /proc/net; none when unreadable. */
export function defaultRouteInterfaces(): string[] {
  const out = new Set<string>();
  try {
    for (const line of readFileSync('/proc/net/route', 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 7 && f[1] === '00000000' && f[7] === '00000000') out.add(f[0]!);
    }
  } catch {
    /* not Linux, or no /proc */
  }
  try {
    for (const line of readFileSync('/proc/net/ipv6_route', 'utf8').split('\n')) {
      const f = line.trim().split(/\s+/);
      if (f.length >= 10 && /^0{32}$/.test(f[0]!) && f[1] === '00' && f[9] !== 'lo') out.add(f[9]!);
    }
  } catch {
    /* no IPv6 */
  }
  return [...out];
}

/** The devbox matchers: one rule prefix per interface and per source range. */
function matchers(o: FirewallOptions): string[] {
  const out = o.interfaces.map((i) => `iifname "${i}"`);
  const v4 = o.devboxCidrs.filter((c) => !c.includes(':'));
  const v6 = o.devboxCidrs.filter((c) => c.includes(':'));
  if (v4.length > 0) out.push(`ip saddr { ${v4.join(', ')} }`);
  if (v6.length > 0) out.push(`ip6 saddr { ${v6.join(', ')} }`);
  return out;
}

/** The doors a devbox reaches directly, named in the header only when on. */
function direct(p: FirewallPorts): string {
  const doors: Array<[number | null, string]> = [
    [p.httpProxy, 'HTTP proxy'],
    [p.socks, 'SOCKS5'],
    [p.agentGateway, 'agent gateway'],
    [p.mcpHub, 'MCP hub'],
  ];
  return doors.map(([port, label]) => (port === null ? '' : `  ${label} :${port}`)).join('');
}

export function renderFirewall(input: FirewallOptions): string {
  const o = validateFirewallOptions(input);
  const { table, gatewayAddr: gw, ports: p } = o;
  const m = matchers(o);
  const tcpPorts = [p.transparentTls, p.transparentHttp, p.dns, p.httpProxy, p.socks, p.agentGateway, p.mcpHub].filter((x): x is number => x !== null);
  const uniqueTcp = [...new Set(tcpPorts)].sort((a, b) => a - b);
  const on = (port: number | null, label: string) => (port === null ? `${label} off` : `${label} :${port}`);
  const redirects = [
    ...(p.transparentTls !== null ? [`    meta nfproto ipv4 tcp dport 443 dnat ip to ${gw}:${p.transparentTls}`] : []),
    ...(p.transparentHttp !== null ? [`    meta nfproto ipv4 tcp dport 80 dnat ip to ${gw}:${p.transparentHttp}`] : []),
    ...(p.dns !== null ? [`    meta nfproto ipv4 udp dport 53 dnat ip to ${gw}:${p.dns}`, `    meta nfproto ipv4 tcp dport 53 dnat ip to ${gw}:${p.dns}`] : []),
  ];
  const lines = [
    '#!/usr/sbin/nft -f',
    '# egress-gateway sidecar firewall (rendered by `egress-gateway firewall`; edit the flags, not this file).',
    `# devboxes: ${[...o.interfaces.map((i) => `interface ${i}`), ...o.devboxCidrs].join(', ')}`,
    `# gateway:  ${gw}  ${on(p.transparentTls, 'transparent TLS')}  ${on(p.transparentHttp, 'transparent HTTP')}  ${on(p.dns, 'DNS')}${direct(p)}`,
    `# load:     nft -f THIS_FILE        remove: nft delete table inet ${table}`,
    "# Removing the table re-opens the devboxes' direct egress; stopping the gateway does not (it fails closed).",
    '',
    '# Create-then-delete makes reloading idempotent.',
    `table inet ${table}`,
    `delete table inet ${table}`,
    '',
    `table inet ${table} {`,
    '  chain prerouting {',
    '    type nat hook prerouting priority dstnat; policy accept;',
    ...m.map((x) => `    ${x} jump devbox_redirect`),
    '  }',
    '',
    "  # Web and DNS traffic to anywhere goes to the gateway's transparent doors.",
    '  chain devbox_redirect {',
    ...redirects,
    '  }',
    '',
    '  chain input {',
    '    type filter hook input priority filter; policy accept;',
    ...m.map((x) => `    ${x} jump devbox_input`),
    '  }',
    '',
    "  # To the host itself a devbox may reach only the gateway's listeners.",
    '  chain devbox_input {',
    '    ct state established,related accept',
    ...(uniqueTcp.length > 0 ? [`    ip daddr ${gw} tcp dport { ${uniqueTcp.join(', ')} } accept`] : []),
    ...(p.dns !== null ? [`    ip daddr ${gw} udp dport ${p.dns} accept`] : []),
    '    counter drop',
    '  }',
    '',
    '  # Nothing a devbox sends is routed past the host: direct connections, UDP 443 (QUIC),',
    '  # DNS to other resolvers (already redirected above) and IPv6 all stop here.',
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    ...m.map((x) => `    ${x} counter drop`),
    '  }',
    '}',
    '',
  ];
  return lines.join('\n');
}

function envOr(flags: Map<string, string[]>, flag: string, env: string): string[] {
  const v = flags.get(flag);
  if (v !== undefined)
    return v
      .flatMap((x) => x.split(','))
      .map((x) => x.trim())
      .filter(Boolean);
  const e = process.env[env];
  return e
    ? e
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean)
    : [];
}

function port(at: HostPort | null): number | null {
  return at === null ? null : at.port;
}

export async function firewallCommand(flags: Map<string, string[]>, _positional: string[]): Promise<void> {
  const config = loadConfig(flags);
  const gatewayAddr = envOr(flags, 'gateway-addr', 'EGRESS_GATEWAY_ADDR').at(-1);
  if (!gatewayAddr) throw new ConfigError('--gateway-addr', 'required: the IPv4 address on this host the devboxes reach the gateway at');
  const text = renderFirewall({
    table: envOr(flags, 'table', 'EGRESS_FIREWALL_TABLE').at(-1) ?? DEFAULT_TABLE,
    devboxCidrs: envOr(flags, 'devbox-cidr', 'EGRESS_DEVBOX_CIDR'),
    interfaces: envOr(flags, 'interface', 'EGRESS_DEVBOX_INTERFACE'),
    gatewayAddr,
    ports: {
      transparentTls: port(config.transparentTls),
      transparentHttp: port(config.transparentHttp),
      dns: port(config.dns),
      httpProxy: port(config.httpProxy),
      socks: port(config.socks),
      agentGateway: port(config.agentGateway),
      mcpHub: port(config.mcpHub),
    },
    force: flags.has('force'),
  });
  const out = flags.get('out')?.at(-1);
  if (out) writeFileSync(out, text);
  else process.stdout.write(text);
  process.exitCode = 0;
}
