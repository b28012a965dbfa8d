/**
 * `serve --workers 2` (the real CLI), what happens to the processes:
 * - a worker killed with SIGKILL: the listeners keep answering through the other, a new
 *   worker takes its slot, and it knows the addresses the dead one's devboxes learned;
 * - SIGHUP's reloaded settings reach every worker;
 * - SIGTERM drains every worker: open tunnels in both keep working through the grace
 *   period, then everything exits 0.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TOKEN_A, TOKEN_B } from '../support/gateway.js';
import { connectThenGet, dnsAsk, dnsWireName } from '../support/door-clients.js';
import { type HeldTunnel, type TwoWorkers, holdConnect, listeningPids, startTwoWorkers, workerPids, workersLogging } from './support.js';
import { tempDir } from '../support/temp.js';

const A = '127.0.0.2';
const opts = { source: A };
let t: TwoWorkers;
let configFile = '';
let policy = '';

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const seq = async <T>(n: number, f: () => Promise<T>): Promise<T[]> => {
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push(await f());
  return out;
};
const writeConfig = (allowPrivate: string[]) => writeFileSync(configFile, JSON.stringify({ api_token: [`${TOKEN_A}:acct-a`, `${TOKEN_B}:acct-b`], allow_private: allowPrivate, log_allowed: 'all' }));

beforeAll(async () => {
  configFile = join(tempDir('workers'), 'config.json');
  writeConfig(['127.0.0.0/8']);
  t = await startTwoWorkers({ 'learned.test': [{ type: 'A', data: '127.0.0.1', ttl: 60 }] }, { configFile, args: ['--shutdown-grace-ms', '4000'] });
  policy = await t.gw.api.policy('w', { allowed_hostnames: ['origin.test', 'learned.test'] });
  await t.gw.api.devbox(policy, [A]);
}, 240_000);

afterAll(async () => {
  await t?.close();
});

describe('worker processes', { timeout: 60_000 }, () => {
  it('a worker killed with SIGKILL: the listeners keep answering, a new worker takes its slot and knows what was learned', async () => {
    // Learned through whichever worker answers: the IP literal is admitted through both.
    expect((await dnsAsk(t.gw.ports.dns, dnsWireName('learned.test').wire!, opts)).kind).toBe('allow');
    const before = workerPids(t.gw.out());
    expect(before.size).toBe(2);
    const victim = before.get(0)!;
    process.kill(victim, 'SIGKILL');
    await expect.poll(() => t.gw.out().includes('"event":"worker_exit"'), { timeout: 10_000 }).toBe(true);
    // Meanwhile the other worker answers every door's clients.
    for (const o of await seq(4, () => connectThenGet(t.gw.ports.proxy, 'origin.test', t.origin.port, opts))) expect(o.kind, o.evidence).toBe('allow');
    for (const o of await seq(4, () => dnsAsk(t.gw.ports.dns, dnsWireName('origin.test').wire!, opts))) expect(o.kind, o.evidence).toBe('allow');
    // A new worker in slot 0.
    await expect.poll(() => workerPids(t.gw.out()).get(0), { timeout: 30_000 }).not.toBe(victim);
    const replacement = workerPids(t.gw.out()).get(0)!;
    expect(alive(replacement)).toBe(true);
    expect(alive(victim)).toBe(false);
    await expect.poll(() => listeningPids(t.gw.out()).has(replacement), { timeout: 30_000 }).toBe(true);
    // It serves (its lines carry its pid), and it was handed the learned address before listening.
    const logged = t.gw.out().length;
    for (let i = 0; i < 6; i++) {
      const h = await holdConnect(t.gw.ports.proxy, `127.0.0.1:${t.origin.port}`, A);
      h.socket.destroy();
      expect(h.status).toBe(200);
    }
    await expect.poll(() => workersLogging(t.gw.out().slice(logged), (l) => l.pid === replacement).size, { timeout: 5000 }).toBe(1);
  });

  it('SIGHUP reaches every worker', async () => {
    for (const o of await seq(4, () => connectThenGet(t.gw.ports.proxy, 'origin.test', t.origin.port, opts))) expect(o.kind, o.evidence).toBe('allow');
    writeConfig([]);
    const logged = t.gw.out().length;
    t.gw.child.kill('SIGHUP');
    await expect.poll(() => t.gw.out().slice(logged).includes('"event":"reload"'), { timeout: 5000 }).toBe(true);
    // origin.test is 127.0.0.1: without --allow-private, the guardrail denies it in both workers.
    await expect.poll(async () => (await connectThenGet(t.gw.ports.proxy, 'origin.test', t.origin.port, opts)).kind, { timeout: 5000 }).toBe('deny');
    for (const o of await seq(6, () => connectThenGet(t.gw.ports.proxy, 'origin.test', t.origin.port, opts))) expect(o.kind, o.evidence).toBe('deny');
    expect(workersLogging(t.gw.out().slice(logged), (l) => l.reason === 'private_address').size).toBe(2);
    writeConfig(['127.0.0.0/8']);
    t.gw.child.kill('SIGHUP');
    await expect.poll(async () => (await connectThenGet(t.gw.ports.proxy, 'origin.test', t.origin.port, opts)).kind, { timeout: 5000 }).toBe('allow');
  });

  it('SIGTERM drains every worker: open tunnels in both keep working, then all exit 0', async () => {
    const held: HeldTunnel[] = await seq(4, () => holdConnect(t.gw.ports.proxy, `origin.test:${t.origin.port}`, A));
    for (const h of held) expect(h.status).toBe(200);
    const pids = [...workerPids(t.gw.out()).values()];
    const exited = t.gw.exited;
    const logged = t.gw.out().length;
    t.gw.child.kill('SIGTERM');
    await expect.poll(() => t.gw.out().split('"event":"worker_stopping"').length - 1, { timeout: 5000 }).toBe(2);
    // Draining: each tunnel still carries a request to the origin and its answer.
    const answers = await Promise.all(
      held.map(
        (h) =>
          new Promise<string>((resolve) => {
            let got = '';
            h.socket.on('data', (d: Buffer) => {
              got += d.toString('latin1');
              if (got.includes('\r\n\r\n')) resolve(got.slice(0, 12));
            });
            h.socket.once('close', () => resolve(got.slice(0, 12)));
            h.socket.write('GET / HTTP/1.1\r\nHost: origin.test\r\n\r\n');
          }),
      ),
    );
    expect(answers).toEqual(held.map(() => 'HTTP/1.1 200'));
    for (const h of held) h.socket.destroy();
    expect((await exited).code).toBe(0);
    for (const pid of pids) expect(alive(pid)).toBe(false);
    // The drained tunnels were in both workers.
    expect(workersLogging(t.gw.out().slice(logged), (l) => l.msg === 'egress connection closed' && l.port === t.origin.port).size).toBe(2);
  });
});
