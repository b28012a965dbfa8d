/** The process logger: JSON lines on stdout, buffered and written asynchronously. */
import { pino, type Logger } from 'pino';

export interface ProcessLogger {
  log: Logger;
  /** Writes out whatever is buffered (at start-up, on exit). */
  flush(): void;
}

export function createLogger(level: string): ProcessLogger {
  // A decision line per request must not cost a write(2) each.
  const dest = pino.destination({ dest: 1, sync: false, minLength: 4096 });
  const log = pino({ level, base: { service: 'egress-gateway' } }, dest);
  const flush = () => {
    try {
      dest.flushSync();
    } catch {
      /* stdout gone */
    }
  };
  process.on('exit', flush);
  // Quiet periods still reach the log within a second.
  setInterval(() => {
    try {
      dest.flush();
    } catch {
      /* not ready or gone; the next tick tries again */
    }
  }, 1000).unref();
  return { log, flush };
}
