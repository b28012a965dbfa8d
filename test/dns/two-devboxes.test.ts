/**
 * Two devboxes with different policies on one gateway: each is answered by its own
 * policy, identified by source address; a policy edit applies to the next query.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DnsSetup, answers, setupDns, status } from '../support/dns.js';

let s: DnsSetup;

beforeAll(async () => {
  s = await setupDns({
    upstream: {
      records: {
        'alpha.test': [{ type: 'A', data: '127.0.0.10' }],
        'beta.test': [{ type: 'A', data: '127.0.0.11' }],
        'api.shared.test': [{ type: 'A', data: '127.0.0.12' }],
      },
    },
    devboxes: { '127.0.0.2': ['alpha.test', '*.shared.test'], '127.0.0.3': ['beta.test'] },
  });
});
afterAll(() => s.close());

describe('two devboxes, two policies', () => {
  it('each resolves only its own names', async () => {
    const [a1, a2, b1, b2, a3, b3] = await Promise.all([s.dig('127.0.0.2', 'alpha.test'), s.dig('127.0.0.2', 'beta.test'), s.dig('127.0.0.3', 'beta.test'), s.dig('127.0.0.3', 'alpha.test'), s.dig('127.0.0.2', 'api.shared.test'), s.dig('127.0.0.3', 'api.shared.test')]);
    expect(status(a1)).toBe('NOERROR');
    expect(answers(a1)[0]!.data).toBe('127.0.0.10');
    expect(status(a2)).toBe('NXDOMAIN');
    expect(a2).toMatch(/EDE: 15 \(Blocked\)/);
    expect(status(b1)).toBe('NOERROR');
    expect(answers(b1)[0]!.data).toBe('127.0.0.11');
    expect(status(b2)).toBe('NXDOMAIN');
    expect(status(a3)).toBe('NOERROR');
    expect(status(b3)).toBe('NXDOMAIN');
    expect(b2).toContain(s.policies['127.0.0.3']!);
  });

  it('a cached answer for one devbox is not served to the other when its policy denies it', async () => {
    expect(status(await s.dig('127.0.0.2', 'alpha.test'))).toBe('NOERROR');
    expect(status(await s.dig('127.0.0.3', 'alpha.test'))).toBe('NXDOMAIN');
  });

  it('a policy update applies to the next query', async () => {
    await s.g.api.updatePolicy(s.policies['127.0.0.3']!, { allowed_hostnames: ['beta.test', 'alpha.test'] });
    expect(status(await s.dig('127.0.0.3', 'alpha.test'))).toBe('NOERROR');
    await s.g.api.updatePolicy(s.policies['127.0.0.3']!, { allowed_hostnames: ['beta.test'] });
    expect(status(await s.dig('127.0.0.3', 'alpha.test'))).toBe('NXDOMAIN');
  });
});
