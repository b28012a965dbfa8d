/**
 * The CLI's commands and flags, parsed by commander: `egress-gateway serve | check | apply |
 * suggest | firewall | bench | tokens`. The gateway's settings (the table in config.ts) become
 * the flags of the commands that read them — `serve` all of them, the others only theirs —
 * with their env names and defaults in each command's --help; values are collected raw and
 * folded by loadConfig (flag > env > file > default), so commander itself sets no defaults.
 */
import { Command, Option } from 'commander';
import { type GatewayConfig, OPTIONS, type OptionSpec, REPEATABLE, defaultText, envName } from '../config.js';
import { VERSION } from '../version.js';

export type Flags = Map<string, string[]>;
type Run = (flags: Flags, positional: string[]) => Promise<void>;

/** Every value of every flag, in order (a repeatable flag keeps all; others: the last wins later). */
const collect = (v: string, prev: string[] | undefined): string[] => [...(prev ?? []), v];

function placeholder(kind: OptionSpec['kind']['t']): string {
  switch (kind) {
    case 'hostport':
      return 'host:port';
    case 'hostportOrOff':
      return 'host:port|off';
    case 'hostportList':
      return 'host:port,…';
    case 'int':
    case 'intOrNull':
      return 'n';
    case 'list':
      return 'host,…';
    case 'cidrList':
      return 'cidr';
    case 'tokens':
      return 'token:account';
    case 'logAllowed':
      return 'all|sample:N|none';
    default:
      return 'value';
  }
}

/**
 * The settings each command other than `serve` reads (serve reads them all): its --help lists
 * these alone, and any other setting flag is an unknown option there.
 */
export const COMMAND_SETTINGS: Readonly<Record<string, ReadonlyArray<keyof GatewayConfig>>> = {
  check: ['db', 'allowPrivate', 'agentGatewayHosts', 'mcpGatewayHosts', 'mirrorHosts', 'tunnelDomain'],
  firewall: ['httpProxy', 'socks', 'dns', 'transparentTls', 'transparentHttp'],
  tokens: ['db'],
};

/** A setting that was removed: still parsed (start-up then names what replaced it), never listed. */
export const isRemoved = (o: OptionSpec): boolean => o.help.startsWith('removed');

/** Adds --config and the settings `keys` (all when omitted) as flags of `cmd`. */
function settingsOptions(cmd: Command, keys?: ReadonlyArray<keyof GatewayConfig>): Command {
  cmd.addOption(new Option('--config <path>', `JSON or YAML file with any of the settings${keys ? ' (the others are read from it too)' : ''} [env EGRESS_CONFIG]`).argParser(collect));
  for (const o of OPTIONS) {
    if (keys && !keys.includes(o.key)) continue;
    const repeat = REPEATABLE.has(o.flag) && !o.help.includes('repeatable') ? ', repeatable' : '';
    const def = o.help.includes('default') ? '' : ` (default: ${defaultText(o)})`;
    const opt = new Option(`--${o.flag} <${placeholder(o.kind.t)}>`, `${o.help}${repeat}${def} [env ${envName(o)}]`).argParser(collect);
    cmd.addOption(isRemoved(o) ? opt.hideHelp() : opt);
  }
  return cmd;
}

/** Commander's parsed options back to the flag → values map the commands read. */
function toFlags(cmd: Command): Flags {
  const flags: Flags = new Map();
  for (const opt of cmd.options) {
    const v = cmd.getOptionValue(opt.attributeName()) as string[] | boolean | undefined;
    if (v === undefined || (opt.negate && v !== false)) continue;
    flags.set(opt.long!.slice(2), Array.isArray(v) ? v : [String(v)]);
  }
  return flags;
}

function command(program: Command, name: string, summary: string, load: () => Promise<Run>): Command {
  const cmd = program.command(name).description(summary).allowExcessArguments(false);
  cmd.action(async (...args: unknown[]) => {
    const positional = args.slice(0, cmd.registeredArguments.length).flatMap((a) => (a === undefined ? [] : Array.isArray(a) ? a : [String(a)]));
    await (await load())(toFlags(cmd), positional);
  });
  return cmd;
}

export function buildProgram(): Command {
  const program = new Command('egress-gateway').description('network-policy enforcement for devboxes').version(VERSION).showHelpAfterError('(add --help for usage)').exitOverride();

  settingsOptions(command(program, 'serve', 'run the gateway (admin API, HTTP proxy, SOCKS5, DNS, transparent doors)', async () => (await import('./serve.js')).serveCommand));

  settingsOptions(
    command(program, 'check', 'explain the decision a policy makes for a destination (exit 0 allow, 1 deny, 2 usage)', async () => (await import('./check.js')).checkCommand)
      .argument('<destination>', 'HOST[:PORT] (port 443 unless given)')
      .option('--policy <npol_id|file>', 'the policy: an id in the store, or a policy file (JSON/YAML)', collect)
      .option('--devbox <dbx_id>', 'check as this devbox (its policy, addresses and account)', collect)
      .option('--json', 'print the decision as JSON'),
    COMMAND_SETTINGS.check,
  );

  command(program, 'apply', 'make the store match a folder (or file) of policy files, through the API', async () => (await import('./apply.js')).applyCommand)
    .argument('<dir>', 'folder of *.json / *.yaml / *.yml policy files, or one file')
    .option('--prune', 'delete policies the folder does not name')
    .option('--dry-run', 'print the changes, make none')
    .option('--api-url <url>', 'admin API base URL (default: http://127.0.0.1:8080) [env EGRESS_API_URL]', collect)
    .option('--token <token>', 'API token [env RUNLOOP_API_KEY]', collect);

  settingsOptions(
    command(program, 'firewall', 'print the nftables ruleset for a sidecar deployment', async () => (await import('./firewall.js')).firewallCommand)
      .option('--devbox-cidr <cidr>', 'devbox source range, repeatable (0.0.0.0/0 and ::/0 need --force) [env EGRESS_DEVBOX_CIDR]', collect)
      .option('--interface <name>', 'devbox-facing interface (trailing * allowed), repeatable; the default-route interface needs --force [env EGRESS_DEVBOX_INTERFACE]', collect)
      .option('--gateway-addr <ipv4>', 'address on this host the devboxes reach the gateway at (required) [env EGRESS_GATEWAY_ADDR]', collect)
      .option('--table <name>', 'nftables table (default: egress_gateway) [env EGRESS_FIREWALL_TABLE]', collect)
      .option('--out <file>', 'write the ruleset to FILE instead of stdout', collect)
      .option('--force', "render even a devbox range or interface that would capture the host's own traffic"),
    COMMAND_SETTINGS.firewall,
  );

  command(program, 'bench', 'load-test a running gateway (exit 1 when any answer was wrong)', async () => (await import('./bench.js')).benchCommand)
    .option('--proxy <host:port>', 'HTTP proxy door to load', collect)
    .option('--socks-proxy <host:port>', 'SOCKS5 door to load', collect)
    .option('--dns <host:port>', 'DNS door to load', collect)
    .option('--allowed <host[:port]>', 'a destination the policy allows (required)', collect)
    .option('--denied <host[:port]>', 'a destination the policy denies (required)', collect)
    .option('--duration <time>', 'how long each scenario runs, e.g. 10s, 500ms, 1m (default: 10s)', collect)
    .option('--concurrency <n>', 'requests in flight per scenario (default: 8)', collect)
    .option('--max-requests <n>', 'stop a scenario after this many requests (default: 1000000)', collect)
    .option('--proxy-user <user:password>', "a devbox's proxy credentials [env EGRESS_BENCH_PROXY_USER]", collect)
    .option('--no-direct', 'leave out the direct rows (the allowed destination without the gateway, measured where reachable)')
    .option('--json', 'print the report as JSON');

  command(program, 'suggest', 'print a policy file (the format apply reads) adding what a devbox was denied', async () => (await import('./suggest.js')).suggestCommand)
    .option('--devbox <dbx_id>', 'the devbox whose denials to read (required)', collect)
    .option('--since <time>', 'how far back to read, e.g. 30m, 1h, 7d (default: 24h)', collect)
    .option('--collapse <n>', 'siblings under one registrable domain that become one *. entry (default: 3)', collect)
    .option('--api-url <url>', 'admin API base URL (default: http://127.0.0.1:8080) [env EGRESS_API_URL]', collect)
    .option('--token <token>', 'API token [env RUNLOOP_API_KEY]', collect);

  settingsOptions(
    command(program, 'tokens', 'API tokens in the store (--db): list, create [--account ID], revoke ID|PREFIX', async () => (await import('./tokens.js')).tokensCommand)
      .argument('<action>', 'list, create or revoke')
      .argument('[ref]', 'the token id or prefix to revoke')
      .option('--account <id>', 'account of a created token (default: default)', collect)
      .option('--json', 'print as JSON'),
    COMMAND_SETTINGS.tokens,
  );

  return program;
}
