/**
 * Issue 22, part 2: the process plumbing written once (src/ipc.ts) and the learned-address
 * outbox (src/wiring/learned-sharing.ts), each pinned on its own:
 * - a socket link carries framed messages with raw bytes beside them, whatever the chunking;
 * - a request that gets no answer resolves with its fallback at its deadline, and every
 *   request waiting on a link that closes resolves at once (a dead peer is not waited for);
 * - supervise() restarts what exits, stops after repeated quick exits, and stop() drains;
 * - the outbox batches what is learned while a batch is in flight, coalesces one entry per
 *   devbox and address, and keeps one batch in flight.
 */
import { afterEach, describe, expect, it } from 'vitest';
import net from 'node:net';
import pino from 'pino';
import { Channel, type Instance, socketLink, supervise } from '../../src/ipc.js';
import { type LearnedEntry, LearnedOutbox } from '../../src/wiring/learned-sharing.js';
import { waitFor } from '../support/wait.js';

const open: net.Socket[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.destroy();
});

/** Two ends of a real loopback TCP connection. */
async function socketPair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const a = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  const b = await accepted;
  server.close();
  open.push(a, b);
  return [a, b];
}

type Ask = { egw: 'ask'; id: number; n: number } | { egw: 'answer'; re?: number; n: number };

describe('ipc: one channel, requests with a deadline, one supervisor', () => {
  it('a socket link delivers every framed message and its raw bytes, however the stream is cut', async () => {
    const [a, b] = await socketPair();
    const got: Array<[unknown, number]> = [];
    socketLink(b).on((m, bin) => got.push([m, bin?.length ?? 0]));
    const left = socketLink(a);
    const big = Buffer.alloc(200_000, 7);
    for (let i = 0; i < 50; i++) left.send({ egw: 'x', i }, i % 10 === 0 ? big : undefined);
    await waitFor(() => got.length === 50, 5000, 'every frame');
    expect(got.map(([m]) => (m as { i: number }).i)).toEqual([...Array(50).keys()]);
    expect(got.filter(([, n]) => n === 200_000)).toHaveLength(5);
  });

  it("a request no one answers resolves with its fallback at its deadline; a closed link's at once", async () => {
    const [a, b] = await socketPair();
    const late: string[] = [];
    const asker = new Channel<Ask, Ask>(
      socketLink(a),
      () => {},
      (kind) => late.push(kind),
    );
    // The peer answers only even numbers.
    const peer = new Channel<Ask, Ask>(socketLink(b), (m) => {
      if (m.egw === 'ask' && m.n % 2 === 0) peer.reply(m, { egw: 'answer', n: m.n * 10 });
    });
    const read = (m: Ask) => m.n;
    expect(await asker.ask((id) => ({ egw: 'ask', id, n: 4 }), 2000, -1, read)).toBe(40);
    expect(await asker.ask((id) => ({ egw: 'ask', id, n: 3 }), 100, -1, read)).toBe(-1);
    expect(late).toEqual(['ask']);
    const pending = asker.ask((id) => ({ egw: 'ask', id, n: 5 }), 60_000, -2, read);
    b.destroy();
    expect(await pending).toBe(-2);
    expect(await asker.ask((id) => ({ egw: 'ask', id, n: 6 }), 60_000, -3, read)).toBe(-3);
  });

  it('supervise() restarts an instance that exits, gives up after repeated quick exits, and drains on stop', async () => {
    const log = pino({ level: 'silent' });
    let started = 0;
    const instances: Array<Instance & { exit(): void; drained: number | null }> = [];
    const start = async () => {
      started++;
      let exit!: (how: string) => void;
      const exited = new Promise<string>((r) => (exit = r));
      const i = {
        exited,
        drained: null as number | null,
        exit: () => exit('code 1'),
        drain: (g: number) => {
          i.drained = g;
          exit('code 0');
        },
        kill: () => exit('signal SIGKILL'),
      };
      instances.push(i);
      return i;
    };
    const sup = await supervise({ name: 'test part', event: 'test_exit', log, start, restartMs: 1 });
    expect(started).toBe(1);
    instances[0]!.exit();
    await waitFor(() => started === 2 && sup.current() === instances[1], 5000, 'a restart');
    // Quick exits in a row (each within a minute of starting): the sixth is not restarted.
    for (let k = 0; k < 5; k++) {
      const n = started;
      instances.at(-1)!.exit();
      if (k < 4) await waitFor(() => started === n + 1, 5000, 'another restart');
    }
    await new Promise((r) => setTimeout(r, 50));
    expect(started).toBe(6);
    expect(sup.current()).toBeNull();
    // A fresh supervisor's stop drains its instance.
    const sup2 = await supervise({ name: 'test part', event: 'test_exit', log, start, restartMs: 1 });
    const last = instances.at(-1)!;
    await sup2.stop(1234);
    expect(last.drained).toBe(1234);
    expect(started).toBe(7);
  });

  it('the learned outbox batches, coalesces and keeps one batch in flight', async () => {
    const batches: LearnedEntry[][] = [];
    let release!: () => void;
    const outbox = new LearnedOutbox((entries) => {
      batches.push(entries);
      return new Promise<void>((r) => (release = r));
    });
    const first = outbox.push([['dbx_a', 'a.test', '10.0.0.1', 1000]]);
    await waitFor(() => batches.length === 1, 5000, 'the first batch');
    // While it is in flight: the same address three times (longest expiry wins), and another.
    let secondDone = false;
    const second = outbox.push([['dbx_a', 'a.test', '10.0.0.2', 1000]]).then(() => (secondDone = true));
    void outbox.push([['dbx_a', 'a.test', '10.0.0.2', 3000]]);
    void outbox.push([
      ['dbx_a', 'a.test', '10.0.0.2', 2000],
      ['dbx_b', 'b.test', '10.0.0.2', 1000],
    ]);
    await new Promise((r) => setTimeout(r, 20));
    expect(batches).toHaveLength(1);
    expect(outbox.waiting).toBe(2);
    release();
    await first;
    await waitFor(() => batches.length === 2, 5000, 'the second batch');
    expect(batches[1]).toEqual([
      ['dbx_a', 'a.test', '10.0.0.2', 3000],
      ['dbx_b', 'b.test', '10.0.0.2', 1000],
    ]);
    expect(secondDone).toBe(false);
    release();
    await second;
  });
});
