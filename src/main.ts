#!/usr/bin/env node
/** CLI: `egress-gateway serve | check | apply | suggest | firewall | bench`. */
import { createLogger } from './log.js';
import { ConfigError, OPTIONS, BOOLEAN_FLAGS, configHelp, loadConfig, parseArgv } from './config.js';

const COMMAND_FLAGS = ['config', 'help', 'policy', 'devbox', 'prune', 'dry-run', 'json', 'proxy', 'duration', 'concurrency', 'api-url', 'token',
  'allowed', 'denied', 'devbox-cidr', 'gateway-addr', 'interface', 'socks-proxy', 'out', 'table', 'proxy-user', 'max-requests', 'since', 'collapse', 'account'];

const USAGE = `egress-gateway — network-policy enforcement for devboxes

Commands:
  serve                          run the gateway (admin API, HTTP proxy, SOCKS5, DNS, transparent doors)
  check --policy npol_… HOST[:PORT]   explain the decision a policy makes for a destination
  apply DIR [--prune] [--dry-run]     make the store match a folder of policy files
  suggest --devbox dbx_… [--since 1h]  print a policy file adding what the devbox was denied
  firewall --devbox-cidr CIDR --gateway-addr IP   print nftables rules for sidecar deployment
  bench --proxy HOST:PORT --dns HOST:PORT --allowed HOST --denied HOST   load-test a running gateway
  tokens list|create [--account ID]|revoke ID|PREFIX   API tokens in the store (--db)

Settings (flag > env > --config file > default):
  --config PATH                  JSON or YAML file with any of the settings below
${configHelp()}`;

async function serve(flags: Map<string, string[]>): Promise<void> {
  const config = loadConfig(flags);
  const { log, flush: flushLogs } = createLogger(config.logLevel);
  // Loaded here so `check`/`apply` do not pay for the whole server stack.
  const { startGateway } = await import('./server.js');
  const gw = await startGateway(config, log);
  flushLogs(); // the start-up line names every listener: show it now
  if (gw.createdToken) {
    process.stderr.write(
      `\nCreated API token for account "default" (shown once, stored only as a hash):\n\n  ${gw.createdToken}\n\n` +
        `  export RUNLOOP_API_KEY=${gw.createdToken}\n\n`,
    );
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ event: 'shutdown', signal }, `received ${signal}, draining connections`);
    gw.close().then(
      () => {
        log.info({ event: 'stopped' }, 'stopped');
        flushLogs();
        process.exit(0);
      },
      (e: unknown) => {
        log.error({ err: e }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

type Command = (flags: Map<string, string[]>, positional: string[]) => Promise<void>;

const COMMANDS: Record<string, () => Promise<Command>> = {
  serve: async () => serve,
  check: async () => (await import('./cli/check.js')).checkCommand,
  apply: async () => (await import('./cli/apply.js')).applyCommand,
  firewall: async () => (await import('./cli/firewall.js')).firewallCommand,
  bench: async () => (await import('./cli/bench.js')).benchCommand,
  suggest: async () => (await import('./cli/suggest.js')).suggestCommand,
  tokens: async () => (await import('./cli/tokens.js')).tokensCommand,
};

async function main(argv: string[]): Promise<number> {
  const known = new Set([...OPTIONS.map((o) => o.flag), ...COMMAND_FLAGS, ...BOOLEAN_FLAGS]);
  const { flags, positional } = parseArgv(argv, known);
  const name = positional.shift() ?? 'help';
  if (name === 'help' || flags.has('help') || !(name in COMMANDS)) {
    process.stdout.write(`${USAGE}\n`);
    return name === 'help' || flags.has('help') ? 0 : 2;
  }
  const command = await COMMANDS[name]!();
  await command(flags, positional);
  return -1; // keep running (serve) or the command set process.exitCode
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof ConfigError) {
      process.stderr.write(`egress-gateway: bad config: ${e.message}\n`);
      process.exit(2);
    }
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EADDRINUSE' || err.code === 'EADDRNOTAVAIL' || err.code === 'EACCES') {
      process.stderr.write(`egress-gateway: cannot listen: ${err.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`egress-gateway: ${err.stack ?? String(e)}\n`);
    process.exit(1);
  },
);
