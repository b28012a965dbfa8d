/**
 * The hostile side of the stall-budget test, run as its own process (so generating the
 * attack does not slow the test process that times the victim): from one unregistered
 * source, each door gets its worst maximum-size input in a bounded loop.
 * Usage: tsx stall-attacker.ts '<ports json>' <ms>; prints the number of attacks sent.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { worstClientHello, worstConnect, worstDnsQuery, worstHeads } from '../fixtures/worst-inputs.js';

const ATTACKER = '127.0.0.9';
const ATTACKERS_PER_DOOR = 1;
const PAUSE_MS = 50;
let port: Record<string, number> = {};

/** Sends `bytes` in pieces of `piece` bytes, then waits for the gateway to answer or close (bounded). */
function hostile(p: number, bytes: Buffer, piece: number): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port: p, localAddress: ATTACKER, noDelay: true });
    const done = () => {
      clearTimeout(timer);
      s.destroy();
      resolve();
    };
    const timer = setTimeout(done, 3000);
    s.on('error', done);
    s.on('close', done);
    s.on('data', () => {});
    s.on('connect', async () => {
      for (let i = 0; i < bytes.length && !s.destroyed; i += piece) {
        if (!s.write(bytes.subarray(i, i + piece))) await new Promise((r) => s.once('drain', r));
      }
    });
  });
}

function hostileDnsUdp(p: number, msg: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const u = dgram.createSocket('udp4');
    u.bind(0, ATTACKER, () =>
      u.send(msg, p, '127.0.0.1', () => {
        u.close();
        resolve();
      }),
    );
  });
}

/** Every door, its worst maximum-size input. */
function attacks(): Array<() => Promise<void>> {
  const head = worstHeads.spacesValue(32_768 - 64);
  const headOrigin = worstHeads.spacesValue(32_768 - 64, 'GET / HTTP/1.1\r\nHost: allowed.test\r\n');
  const hello = worstClientHello(65_536 - 64);
  const frame = worstDnsQuery(4096);
  const framed = Buffer.concat([Buffer.from([frame.length >> 8, frame.length & 0xff]), frame]);
  const socks = Buffer.from([5, 255, ...Array.from({ length: 255 }, (_, i) => i), 5, 1, 0, 3, 255, ...Buffer.alloc(255, 0x61), 1, 187]);
  return [
    () => hostile(port['http-proxy']!, head, 1024),
    () => hostile(port['http-proxy']!, worstConnect(8192), 256),
    () => hostile(port['transparent-http']!, headOrigin, 1024),
    () => hostile(port['transparent-tls']!, hello, 256),
    // The credential doors: a maximum-size head (node:http's parser, then refused without a token).
    () => hostile(port['agent-gateway']!, head, 1024),
    () => hostile(port['mcp-hub']!, head, 1024),
    () => hostile(port.socks5!, socks, 1),
    () => hostile(port.dns!, framed, 64),
    () => hostileDnsUdp(port.dns!, worstDnsQuery(1232)),
  ];
}

async function run(ms: number): Promise<number> {
  let attacking = true;
  let sent = 0;
  const workers = attacks().flatMap((attack) =>
    Array.from({ length: ATTACKERS_PER_DOOR }, async () => {
      while (attacking) {
        await attack();
        sent++;
        await new Promise((r) => setTimeout(r, PAUSE_MS)); // bounded load
      }
    }),
  );
  await new Promise((r) => setTimeout(r, ms));
  attacking = false;
  await Promise.all(workers);
  return sent;
}

port = JSON.parse(process.argv[2] ?? '{}') as Record<string, number>;
process.stdout.write('attacking\n'); // the test samples its victim from here
void run(Number(process.argv[3] ?? 1000)).then((n) => {
  process.stdout.write(`${n}\n`);
  process.exit(0);
});
