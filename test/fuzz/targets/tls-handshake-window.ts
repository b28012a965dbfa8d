/**
 * The TLS handshake window's readers (ServerHelloWatch, ClientHelloWatch in
 * src/doors/floor/handshake-window.ts). Chosen by the first byte:
 * - 0x00–0x3f: the rest is a server stream as sent;
 * - 0x40–0x7f: the rest is a client stream (after hello 1) as sent;
 * - otherwise the input drives builders of well-formed flights whose reading is known: a
 *   server's HelloRetryRequest (cookie of any length) + ChangeCipherSpec + ServerHello, and
 *   a client's ChangeCipherSpec + early data + hello 2 (odd names, ECH codepoints), in
 *   records of 1–300 bytes.
 * Properties: no throw; read in chunks = read whole (answer, hellos judged, bytes released);
 * `judged` never goes back nor past the bytes read; built flights read exactly as expected,
 * and no byte of a hello's message is released before the judge has seen it.
 */
import { ClientHelloWatch, HRR_RANDOM, ServerHelloWatch } from '../../../src/doors/floor/handshake-window.js';
import { ECH_EXTENSIONS } from '../../../src/doors/floor/clienthello.js';
import { clientHelloMessage, records } from '../../fixtures/clienthello.js';
import { Bytes, check, chunks, same, timed } from '../support/harness.js';

const u16 = (n: number) => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
const u24 = (n: number) => Buffer.from([(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
const CCS = Buffer.from([20, 3, 3, 0, 1, 1]);
const NAME_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789.-';
const EXT_TYPES = [...ECH_EXTENSIONS, 21, 16, 0x1234];

function serverRead(parts: Buffer[]): { r: string | null; retries: number } {
  const w = new ServerHelloWatch();
  for (const p of parts) {
    const r = w.push(p);
    if (r !== null) return { r, retries: w.retries };
  }
  return { r: null, retries: w.retries };
}

interface ClientReading {
  refusal: string | null;
  hellos: Array<{ sni: string | null; ech: boolean }>;
  judged: number;
}

/** Reads parts; `helloAt` (stream offset of each hello message) checks nothing of it goes early. */
function clientRead(parts: Buffer[], helloAt: number[] = []): ClientReading {
  const hellos: ClientReading['hellos'] = [];
  let released = 0;
  const w = new ClientHelloWatch((h) => {
    const at = helloAt[hellos.length];
    if (at !== undefined) check(released <= at, `hello at ${at} released up to ${released} before it was judged`);
    hellos.push({ sni: h.sni, ech: h.ech });
    return null;
  });
  for (const p of parts) {
    const r = w.push(p);
    if (r !== null) return { refusal: r, hellos, judged: -1 }; // how much went before depends on the reads
    check(w.judged >= released && w.judged <= w.pos, `judged ${w.judged} after ${released}, read ${w.pos}`);
    released = w.judged;
  }
  return { refusal: null, hellos, judged: released };
}

function serverHello(retry: boolean, cookie: Buffer): Buffer {
  const exts = Buffer.concat([u16(43), u16(2), u16(0x0304), ...(retry && cookie.length > 0 ? [u16(44), u16(cookie.length + 2), u16(cookie.length), cookie] : [])]);
  const body = Buffer.concat([Buffer.from([3, 3]), retry ? HRR_RANDOM : Buffer.alloc(32, 9), Buffer.from([0]), u16(0x1301), Buffer.from([0]), u16(exts.length), exts]);
  return Buffer.concat([Buffer.from([2]), u24(body.length), body]);
}

function built(data: Buffer): void {
  const b = new Bytes(data);
  const recordSize = 1 + (b.u16() % 300);
  // The server: HRR, CCS, ServerHello, then anything.
  const cookie = b.take(b.u16() % 2048);
  const server = Buffer.concat([records(serverHello(true, cookie), recordSize, 0x0303), CCS, records(serverHello(false, Buffer.alloc(0)), recordSize, 0x0303), b.take(b.u8() % 16)]);
  same(serverRead(chunks(server)), { r: 'stop', retries: 1 }, 'built server flight read wrongly');
  // The client: CCS, maybe early data, then hello 2.
  let name = '';
  const nameLen = b.u8() % 40;
  for (let i = 0; i < nameLen; i++) name += NAME_CHARS[b.u8() % NAME_CHARS.length];
  const extras: Array<[number, Buffer]> = [];
  const nExtras = b.u8() % 3;
  for (let i = 0; i < nExtras; i++) {
    const t = b.pick(EXT_TYPES);
    if (!extras.some(([e]) => e === t)) extras.push([t, b.take(b.u8() % 30)]);
  }
  const earlyLen = b.u8() < 64 ? 1 + (b.u8() % 100) : 0;
  const early = earlyLen > 0 ? Buffer.concat([Buffer.from([23, 3, 3]), u16(earlyLen), Buffer.alloc(earlyLen, 1)]) : Buffer.alloc(0);
  const head = Buffer.concat([CCS, early]);
  const hello = records(clientHelloMessage({ sni: name.length > 0 ? name : null, extensions: extras }), recordSize, 0x0303);
  const client = Buffer.concat([head, hello]);
  const expected: ClientReading = { refusal: null, hellos: [{ sni: name.length > 0 ? name : null, ech: extras.some(([t]) => ECH_EXTENSIONS.has(t)) }], judged: client.length };
  // The message starts after its first record's header.
  same(clientRead(chunks(client), [head.length + 5]), expected, 'built client flight read wrongly');
}

export function fuzz(data: Buffer): void {
  if (data.length === 0) return;
  const mode = data[0]!;
  const rest = data.subarray(1);
  if (mode < 0x40) {
    const whole = timed('ServerHelloWatch', () => serverRead([rest]));
    same(
      timed('ServerHelloWatch in chunks', () => serverRead(chunks(rest))),
      whole,
      'server stream read in chunks differs from whole',
    );
  } else if (mode < 0x80) {
    const whole = timed('ClientHelloWatch', () => clientRead([rest]));
    same(
      timed('ClientHelloWatch in chunks', () => clientRead(chunks(rest))),
      whole,
      'client stream read in chunks differs from whole',
    );
  } else {
    timed('built flights', () => built(rest));
  }
}
