/**
 * Found by the fuzz targets' stretched-input check (test/fuzz/targets/http-request-head.ts,
 * http-response-head.ts): the header-line regex of the raw front (`:[ \t]*(value*?)[ \t]*$`)
 * backtracked quadratically on a value holding a long run of spaces or tabs before its
 * last byte. A head at the door's limit cost 0.5 s (request, 32 KB) to 2.3 s (origin response,
 * 64 KB) of event-loop time. Both must now read in linear time: the budget here (50 ms of
 * CPU for a 64 KB head, which takes well under 1 ms) is generous for a loaded 2-core machine
 * and far below what the backtracking cost.
 */
import { describe, expect, it } from 'vitest';
import { parseRequestHead, parseResponseHead } from '../../src/doors/http/framing.js';

function cpuMs(fn: () => unknown): number {
  let least = Infinity;
  for (let i = 0; i < 3; i++) {
    const t = process.cpuUsage();
    fn();
    const d = process.cpuUsage(t);
    least = Math.min(least, (d.user + d.system) / 1000);
  }
  return least;
}

const run = (byte: string, n: number) => byte.repeat(n);

describe('header values with long runs of spaces or tabs', () => {
  for (const ws of [' ', '\t']) {
    const name = ws === ' ' ? 'spaces' : 'tabs';
    it(`a 32 KB request head whose value is "a", ${name}, "x" reads in linear time`, () => {
      const head = Buffer.from(`GET http://a/ HTTP/1.1\r\nHost: a\r\nX:a${run(ws, 32_700)}x\r\n\r\n`, 'latin1');
      expect(cpuMs(() => parseRequestHead(head, 33_000))).toBeLessThan(50);
      const r = parseRequestHead(head, 33_000);
      expect(typeof r === 'object' && r.headers[3]).toBe(`a${run(ws, 32_700)}x`);
    });
    it(`a 64 KB origin response head whose value is "a", ${name}, then a control byte is malformed, in linear time`, () => {
      const head = Buffer.from(`HTTP/1.1 200 OK\r\nX:a${run(ws, 65_400)}\x01\r\n\r\n`, 'latin1');
      expect(cpuMs(() => parseResponseHead(head, 0, 65_536))).toBeLessThan(50);
      expect(parseResponseHead(head, 0, 65_536)).toBe('malformed');
    });
  }
  it('values are still trimmed of spaces and tabs at both ends, inner ones kept', () => {
    const r = parseRequestHead(Buffer.from('GET http://a/ HTTP/1.1\r\nHost: a\r\nX: \t a \t b \t \r\nY:\r\n\r\n'), 8192);
    expect(typeof r === 'object' && r.headers).toEqual(['Host', 'a', 'X', 'a \t b', 'Y', '']);
  });
});
