/**
 * The process's signal handling, in one place: SIGTERM and SIGINT stop (once; a second one
 * while stopping exits at once), SIGHUP reloads and never stops. Every handler is guarded: a
 * failure is reported through `onError`, never an unhandled exception that ends the process.
 */
export interface SignalActions {
  stop(signal: 'SIGTERM' | 'SIGINT'): Promise<void>;
  reload(): void;
  onError(what: string, e: unknown): void;
}

export function handleSignals(actions: SignalActions): void {
  let stopping = false;
  const stop = (signal: 'SIGTERM' | 'SIGINT') => {
    if (stopping) {
      // Asked twice (an impatient operator, a supervisor's second signal): go now.
      process.exit(1);
    }
    stopping = true;
    actions.stop(signal).catch((e: unknown) => {
      actions.onError('shutdown', e);
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    if (stopping) return;
    try {
      actions.reload();
    } catch (e) {
      actions.onError('reload', e);
    }
  });
  // A closed stdout or stderr must not end (or stall) the process: the log writer drops and counts.
  process.stdout.on('error', () => {});
  process.stderr.on('error', () => {});
}
