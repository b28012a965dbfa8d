/**
 * Attack (issue #17, 4): quadratic punycode on long labels. One 1,023-character label
 * (CJK, or `xn--` followed by punycode digits) went through IDNA before any length check:
 * ~2.5-7 ms per name in normalizeHost (0.2-0.7 ms at 255), reachable through
 * `POST /v1/egress/check`, policy validation and every door.
 *
 * Expected: label (63) and name (253) lengths are bounded before any IDNA work on every
 * path, so such a name is refused at the cost of its benign control (an ASCII label of
 * the same length), at 1×, 2× and 4× sizes, with the same clear reason.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { normalizeHost } from '../../src/policy/hostname.js';
import { validateHostnames } from '../../src/policy/validate.js';
import { longLabel } from '../fixtures/worst-case-names.js';
import { growthAgainst, repeat, showGrowth } from '../support/timing.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';

describe('long labels are refused before IDNA', () => {
  it('a 1,023-character CJK or punycode label is invalid, with the length as the reason', () => {
    for (const kind of ['cjk', 'punycode'] as const) {
      expect(normalizeHost(longLabel(1_023, kind)), kind).toEqual({ kind: 'invalid', why: 'label longer than 63 characters' });
    }
    expect(normalizeHost(`${'例'.repeat(10)}.jp`).kind).toBe('name');
    expect(normalizeHost(`${'例'.repeat(64)}.jp`)).toEqual({ kind: 'invalid', why: 'label longer than 63 characters' });
    expect(normalizeHost(`${'例。'.repeat(127)}jp`)).toEqual({ kind: 'invalid', why: 'name longer than 253 characters' });
  });

  for (const kind of ['cjk', 'punycode'] as const) {
    it(`normalizeHost: a ${kind} label costs what an ASCII label of the same length does (255, 510, 1,020)`, () => {
      const call = (host: string) => repeat(() => normalizeHost(host), 200);
      const g = growthAgainst(
        (n) => call(longLabel(n, kind)),
        (n) => call(longLabel(n, 'ascii')),
        255,
        9,
      );
      for (const r of g) expect(r.ratio, showGrowth(g)).toBeLessThanOrEqual(2);
    });
  }

  it('policy validation (the API and policy files): 100 long CJK entries cost what 100 long ASCII ones do', () => {
    const entries = (n: number, kind: 'cjk' | 'ascii') => Array.from({ length: 100 }, (_, i) => `${longLabel(n, kind)}${i}`);
    const attempt = (list: string[]) => () => expect(() => validateHostnames(list)).toThrow(/longer than/);
    const g = growthAgainst(
      (n) => attempt(entries(n, 'cjk')),
      (n) => attempt(entries(n, 'ascii')),
      255,
      9,
    );
    for (const r of g) expect(r.ratio, showGrowth(g)).toBeLessThanOrEqual(2);
  });
});

describe('POST /v1/egress/check and policy writes refuse a 1,023-character label cheaply', () => {
  let gw: TestGateway;
  let policyId: string;
  beforeAll(async () => {
    gw = await startTestGateway();
    policyId = await gw.api.policy('p', { allowed_hostnames: ['example.com'] });
  });
  afterAll(async () => gw?.close());

  const check = (host: string) => gw.api.call('POST', '/v1/egress/check', { network_policy_id: policyId, host });

  it('answers deny invalid_host for the CJK and punycode label', async () => {
    for (const kind of ['cjk', 'punycode'] as const) {
      const r = await check(longLabel(1_023, kind));
      expect(r.status, kind).toBe(200);
      expect(r.body).toMatchObject({ decision: 'deny', reason: 'invalid_host' });
    }
  });

  it('a policy naming it is a 400 that names the label length', async () => {
    const r = await gw.api.call('POST', '/v1/network-policies', { name: 'long', allowed_hostnames: [longLabel(1_023, 'cjk')] });
    expect(r.status).toBe(400);
    expect(JSON.stringify(r.body)).toContain('label longer than 63 characters');
  });

  it('costs the gateway what the ASCII control costs (CPU time over 40 checks each)', async () => {
    // The gateway runs in this process: its CPU time is ours.
    const cpu = () => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1000;
    };
    const batch = async (host: string) => {
      const t = cpu();
      for (let i = 0; i < 40; i++) await check(host);
      return cpu() - t;
    };
    let hostile = Infinity;
    let control = Infinity;
    for (let round = 0; round < 5; round++) {
      hostile = Math.min(hostile, await batch(longLabel(1_023, 'cjk')));
      control = Math.min(control, await batch(longLabel(1_023, 'ascii')));
    }
    expect(hostile, `CJK ${hostile.toFixed(1)} ms vs ASCII ${control.toFixed(1)} ms per 40 checks`).toBeLessThanOrEqual(2 * control);
  });
});
