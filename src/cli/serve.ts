/** `egress-gateway serve`: starts the gateway, logs its version and settings, and lives until SIGTERM/SIGINT. */
import { ConfigError, describeConfig, loadConfig } from '../config.js';
import { createLogger } from '../log.js';
import { handleSignals } from '../signals.js';
import { VERSION } from '../version.js';
import { checkListenersFree } from './listeners-free.js';
import { watchWrappers, wrapperChain } from './wrapper-watch.js';

/** Past the shutdown grace, the log flush (≤ 1 s) and some slack, the process exits regardless. */
const EXIT_SLACK_MS = 3000;

export async function serveCommand(flags: Map<string, string[]>): Promise<void> {
  const config = loadConfig(flags);
  // A port in use is said at once, not after the store, the API thread and the workers started.
  await checkListenersFree(config);
  const { log, flush } = createLogger(config.logLevel, {}, undefined, config.logBufferBytes);
  log.info({ event: 'start', version: VERSION, node: process.version, pid: process.pid, settings: describeConfig(config) }, `egress-gateway ${VERSION} starting`);
  // Loaded here so `check`/`apply` do not pay for the whole server stack.
  // --workers 1: everything in this process; else this process is the primary of N workers.
  const gw = config.workers === 1 ? await (await import('../wiring/gateway.js')).startGateway(config, log) : await (await import('../wiring/workers.js')).startWorkers(config, log);
  if (gw.createdToken) {
    process.stderr.write(`\nCreated API token for account "default" (shown once, stored only as a hash):\n\n  ${gw.createdToken}\n\n` + `  export RUNLOOP_API_KEY=${gw.createdToken}\n\n`);
  }
  handleSignals({
    async stop(signal) {
      log.info({ event: 'shutdown', signal }, `received ${signal}, draining connections`);
      setTimeout(() => process.exit(1), config.shutdownGraceMs + EXIT_SLACK_MS).unref();
      await gw.close();
      log.info({ event: 'stopped' }, 'stopped');
      await flush(1000);
      process.exit(0);
    },
    reload() {
      let next: ReturnType<typeof loadConfig>;
      try {
        next = loadConfig(flags);
      } catch (e) {
        const why = e instanceof ConfigError ? e.message : (e as Error).message;
        log.error({ event: 'reload_refused', error: why }, `SIGHUP: configuration not reloaded: ${why}`);
        return;
      }
      const { applied, ignored } = gw.reload(next);
      log.info(
        { event: 'reload', changed: applied, needs_restart: ignored },
        applied.length === 0 && ignored.length === 0
          ? 'SIGHUP: configuration unchanged'
          : `SIGHUP: configuration reloaded${applied.length > 0 ? `; applied ${applied.join(', ')}` : '; nothing reloadable changed'}${ignored.length > 0 ? `; ${ignored.join(', ')} need a restart (kept as started)` : ''}`,
      );
    },
    onError(what, e) {
      log.error({ err: e, event: `${what}_failed` }, `${what} failed`);
    },
  });
  // Under npx/npm a signal to the wrapper may not reach this process: stop when the wrapper goes.
  watchWrappers(wrapperChain(), (w) => {
    log.warn({ event: 'wrapper_exited', pid: w.pid, command: w.command }, `the process that started this gateway (pid ${w.pid}: ${w.command}) has exited: stopping as for SIGTERM`);
    process.kill(process.pid, 'SIGTERM');
  });
}
