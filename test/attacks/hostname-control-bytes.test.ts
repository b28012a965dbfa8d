/**
 * Found by fuzzing (test/fuzz/targets/hostname.ts, api-hostnames.ts, policy-compiler.ts):
 * the mixed-case ASCII path of the host normaliser folded case with `| 0x20`, which also
 * turned CR (0x0d), SO (0x0e), 0x10–0x19 and DEL (0x7f) into '-', '.', digits and '_'.
 * Names carrying those bytes came back as valid names, and the API stored them as
 * allowlist entries (that the compiler then refused). Every such byte is now refused, on
 * the destination path and the entry path, and through the real API.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { normalizeAllowedHostname, normalizeHost } from '../../src/policy/hostname.js';
import { call, errorOf, startTestApi, type TestApi } from '../support/api.js';

/** Every byte `c | 0x20` maps into [a-z0-9._-] without being one of those (or A–Z). */
const FOLDED_CONTROL_BYTES = [0x0d, 0x0e, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x7f].map((c) => String.fromCharCode(c));
/** The fuzzer's own inputs. */
const FOUND = ['nu\u0011Axnl', '\u0015\r.', '\u007fbple'];

describe('host names carrying control bytes', () => {
  for (const c of FOLDED_CONTROL_BYTES) {
    const hex = `0x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
    it(`a destination with ${hex} is not a valid name`, () => {
      for (const host of [`Allowed${c}.test`, `a${c}b.Test`, `${c}A.test`]) expect(normalizeHost(host).kind).toBe('invalid');
    });
    it(`an allowlist entry with ${hex} is refused`, () => {
      for (const entry of [`Allowed${c}.test`, `*.A${c}.example.com`]) expect(normalizeAllowedHostname(entry).ok).toBe(false);
    });
  }
  it('the fuzzer-found inputs are refused', () => {
    for (const s of FOUND) {
      expect(normalizeHost(s).kind).toBe('invalid');
      expect(normalizeAllowedHostname(s).ok).toBe(false);
    }
  });
});

describe('through the API', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi();
  });
  afterAll(async () => {
    await api.close();
  });
  for (const entry of ['Evil\u007f.example.com', ...FOUND]) {
    it(`POST /v1/network-policies refuses ${JSON.stringify(entry)} naming the entry`, async () => {
      const r = await call(api, 'POST', '/v1/network-policies', { body: { name: `ctl-${Math.random()}`, allowed_hostnames: ['ok.example.com', entry] } });
      expect(errorOf(r, 400)).toContain('allowed_hostnames[1]');
    });
  }
});
