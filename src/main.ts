#!/usr/bin/env node
/** The `egress-gateway` command: its commands and flags are in cli/program.ts; here, running them and the exit codes. */
import { CommanderError } from 'commander';
import { buildProgram } from './cli/program.js';
import { ConfigError } from './config.js';
import { PortInUseError } from './doors/floor/listen.js';

async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  if (argv.length === 0) {
    program.outputHelp();
    return;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version exit 0; a usage error (unknown flag or command, missing value) exits 2.
      process.exitCode = e.exitCode === 0 ? 0 : 2;
      return;
    }
    throw e;
  }
}

main(process.argv.slice(2)).catch((e: unknown) => {
  if (e instanceof PortInUseError) {
    process.stderr.write(`egress-gateway: port in use: ${e.message}\n`);
    process.exit(2);
  }
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
});
