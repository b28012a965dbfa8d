/**
 * Waiting in tests: poll a condition with a deadline instead of sleeping a fixed time, so a
 * test goes on as soon as the gateway is ready and still passes on a loaded machine.
 */

/** Polls `check` every `stepMs` until it returns a truthy value (returned); throws naming `what` after `ms`. */
export async function waitFor<T>(check: () => T | Promise<T>, ms = 60_000, what = 'condition', stepMs = 50): Promise<NonNullable<T>> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(stepMs);
  }
}

/** Polls like `waitFor` but answers false at the deadline instead of throwing. */
export async function eventually(check: () => boolean | Promise<boolean>, ms = 3000, stepMs = 20): Promise<boolean> {
  return waitFor(check, ms, '', stepMs).then(
    () => true,
    () => false,
  );
}

/**
 * Resolves after `ms`. Only for what is about time passing (a TTL running out, a time-out, a
 * window for something that must NOT happen); say which at the call.
 */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
