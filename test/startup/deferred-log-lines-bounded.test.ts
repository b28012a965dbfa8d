/**
 * Log lines are written after the answers, a slice per event-loop turn (DeferredLines), so
 * a burst never holds the event loop for one long write. The risk of such a queue: lines
 * made faster than a slice a turn (a denial flood) piling up without bound. Here 500 lines
 * are added every turn for 200 turns: what is held stays within a small multiple of one
 * turn's lines, every line comes out once and in order, and flush() writes the rest.
 */
import { describe, expect, it } from 'vitest';
import type { Logger } from 'pino';
import { DeferredLines } from '../../src/log.js';

describe('DeferredLines', () => {
  it('keeps what it holds bounded under a sustained flood, in order, nothing lost', async () => {
    const out: number[] = [];
    const log = { info: (o: { n: number }) => out.push(o.n), warn: (o: { n: number }) => out.push(o.n) } as unknown as Logger;
    const lines = new DeferredLines(log);
    let n = 0;
    let maxHeld = 0;
    for (let turn = 0; turn < 200; turn++) {
      for (let i = 0; i < 500; i++) lines.info({ n: n++ }, 'x');
      maxHeld = Math.max(maxHeld, lines.held);
      await new Promise((r) => setImmediate(r));
    }
    expect(maxHeld).toBeLessThanOrEqual(4 * 500);
    lines.flush();
    expect(lines.held).toBe(0);
    expect(out).toHaveLength(n);
    expect(out.every((v, i) => v === i)).toBe(true);
  });

  it('writes nothing on the turn a line is made, and at most a slice a turn for a small burst', async () => {
    const out: number[] = [];
    const log = { info: (o: { n: number }) => out.push(o.n) } as unknown as Logger;
    const lines = new DeferredLines(log, 32);
    for (let i = 0; i < 40; i++) lines.info({ n: i }, 'x');
    expect(out).toHaveLength(0);
    await new Promise((r) => setImmediate(r));
    expect(out).toHaveLength(32);
    await new Promise((r) => setImmediate(r));
    expect(out).toHaveLength(40);
  });
});
