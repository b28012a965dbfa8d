/**
 * Issue 23, item 3: one DNS answer cache per host, whatever the worker count. With
 * `--workers 2` each worker used to keep a cache of its own: a name answered through one
 * worker was asked upstream again when the next query (or the next connection's resolution)
 * landed in the other, and a host held N caches. Now the workers' resolvers ask the primary's
 * one cache: the upstream (which counts every question) sees each name once within its TTL,
 * whichever worker answers, through the DNS door and the proxy doors alike.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dig } from '../support/dns.js';
import { connectThenGet } from '../support/door-clients.js';
import { type TwoWorkers, startTwoWorkers, workersLogging } from './support.js';

const A = '127.0.0.2';
let t: TwoWorkers;

beforeAll(async () => {
  t = await startTwoWorkers({ 'cached.test': [{ type: 'A', data: '127.0.0.1', ttl: 300 }], 'dialled.test': [{ type: 'A', data: '127.0.0.1', ttl: 300 }] }, { args: ['--log-allowed', 'all'] });
  const policy = await t.gw.api.policy('cache', { allowed_hostnames: ['cached.test', 'dialled.test'] });
  await t.gw.api.devbox(policy, [A]);
}, 240_000);

afterAll(async () => {
  await t?.close();
});

const by = (door: string, host: string) => workersLogging(t.gw.out(), (l) => l.event === 'decision' && l.door === door && String(l.host ?? l.destination ?? '').startsWith(host));

describe('one answer cache per host with --workers 2', { timeout: 60_000 }, () => {
  it('a name answered through one worker is not asked upstream again through the other (DNS door, UDP and TCP)', async () => {
    // Each TCP query is a new connection: the primary hands them to the workers in turn.
    for (let i = 0; i < 4; i++) expect((await dig(t.gw.ports.dns, A, 'cached.test', '+tcp', '+short')).trim()).toBe('127.0.0.1');
    for (let i = 0; i < 6; i++) expect((await dig(t.gw.ports.dns, A, 'cached.test', '+short')).trim()).toBe('127.0.0.1');
    expect(t.upstream.queries.filter((q) => q.startsWith('cached.test/A/'))).toHaveLength(1);
  });

  it('the proxy doors of both workers dial a name resolved once', async () => {
    for (let i = 0; i < 4; i++) {
      const o = await connectThenGet(t.gw.ports.proxy, 'dialled.test', t.origin.port, { source: A });
      expect(o.kind, o.evidence).toBe('allow');
    }
    // Both workers took CONNECTs (their decision lines), and upstream saw the name once.
    await expect.poll(() => by('connect', 'dialled.test').size, { timeout: 5000 }).toBe(2);
    expect(t.upstream.queries.filter((q) => q.startsWith('dialled.test/A/'))).toHaveLength(1);
  });
});
