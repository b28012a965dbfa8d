/**
 * Account and host ids come from operators and API clients: each must land in exactly one KV key
 * token, so a host id cannot widen a sidecar's filter (`*`, `>`, `.`), reach another host's range,
 * or collide with the unplaced marker; distinct ids give distinct keys.
 */
import { describe, expect, it } from 'vitest';
import { UNPLACED, devboxKey, escapeToken, hostFilter, hostPolicyFilter, localNameOf, policyKey, unescapeToken } from '../../src/fleet/keys.js';

const HOSTILE = ['h1.>', '*', '>', 'h1.devbox', 'a b', '=', '=2e', '', 'ü', 'h1\u0000', '_', 'h1.', '.h1', 'x'.repeat(300)];

describe('bucket keys', () => {
  it('every id is one token of [A-Za-z0-9_=-], so devbox keys have three tokens and policy keys four', () => {
    for (const id of HOSTILE) {
      const t = escapeToken(id);
      expect(t).toMatch(/^[A-Za-z0-9_=-]+$/);
      expect(devboxKey(id, 'dbx_1').split('.')).toHaveLength(3);
      expect(policyKey(id, id, 'npol_1').split('.')).toHaveLength(4);
      expect(unescapeToken(t)).toBe(id);
      expect(localNameOf(policyKey(id, 'acct', id))).toBe(`policy:${id}`);
    }
  });

  it('distinct ids give distinct tokens; none is the unplaced marker', () => {
    const tokens = HOSTILE.map(escapeToken);
    expect(new Set(tokens).size).toBe(HOSTILE.length);
    for (const t of tokens) expect(t).not.toBe(UNPLACED);
    expect(devboxKey(null, 'dbx_1')).toBe('devbox.=.dbx_1');
  });

  it("a host filter covers its own devboxes and no other host's", () => {
    const filter = hostFilter('h1');
    expect(filter).toBe('devbox.h1.>');
    expect(devboxKey('h1', 'dbx_1').startsWith('devbox.h1.')).toBe(true);
    for (const other of ['h1.>', 'h1.', 'h10', 'h1=2e']) expect(devboxKey(other, 'dbx_1').startsWith('devbox.h1.')).toBe(false);
  });

  it("a host's policy filter covers the policies placed on it and no other host's", () => {
    expect(hostPolicyFilter('h1')).toBe('policy.h1.>');
    expect(policyKey('h1', 'default', 'npol_1').startsWith('policy.h1.')).toBe(true);
    for (const other of ['h1.>', 'h1.', 'h10', 'h1=2e']) expect(policyKey(other, 'default', 'npol_1').startsWith('policy.h1.')).toBe(false);
  });

  it('readable ids stay readable', () => {
    expect(policyKey('h1', 'default', 'npol_01abc')).toBe('policy.h1.default.npol_01abc');
  });
});
