/**
 * TLS ClientHello (parseClientHello, src/doors/floor/clienthello.ts), the SNI every TLS door
 * checks. Two modes, chosen by the first byte:
 * - 0x16: the input is the client's first flight as sent;
 * - otherwise the input drives a builder of well-formed hellos (odd names, duplicate or
 *   ECH extensions, records of 1–300 bytes, trailing data) whose expected reading is known.
 * Properties: no throw; a result is one of the four kinds, a hello's length within the
 * input, its SNI lower-case [a-z0-9._-] of 1–254; built hellos read exactly as expected
 * (name, ECH flag, length); bytes after the hello change nothing; and the flight read as it
 * arrives, chunk by chunk (re-reading what is buffered, as readFirstFlight does), reaches
 * the same answer as read whole.
 */
import { type ClientHelloResult, ECH_EXTENSIONS, parseClientHello } from '../../../src/doors/floor/clienthello.js';
import { clientHelloMessage, records } from '../../fixtures/clienthello.js';
import { Bytes, check, chunks, same, timed } from '../support/harness.js';

const NAME_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_';
const ODD_CHARS = ' *%/\\:@\u0000\u00e9\u00ff';
/** Extension types the builder may add: ECH, ech_outer_extensions, padding, ALPN, others, and ones it already sends. */
const EXTRA_TYPES = [0xfe0d, 0xfd00, 21, 16, 0x1234, 0xff01, 43, 10];
const BUILT_IN_TYPES = new Set([43, 10, 13]);

function checkResult(buf: Uint8Array, r: ClientHelloResult): void {
  if (typeof r === 'string') {
    check(r === 'incomplete' || r === 'not_tls' || r === 'malformed', `result ${r}`);
    if (r === 'not_tls') check(buf[0] !== 0x16, 'a handshake record called not_tls');
    return;
  }
  check(r.length >= 5 + 4 + 38 && r.length <= buf.length, `length ${r.length}`);
  check(r.sni === null || /^[a-z0-9._-]{1,254}$/.test(r.sni), `sni ${JSON.stringify(r.sni)}`);
}

/** As readFirstFlight does: buffer each chunk, parse everything buffered, stop at an answer. */
function asArriving(parts: Buffer[]): ClientHelloResult {
  let buf: Buffer | null = null;
  for (const p of parts) {
    buf = buf === null ? p : Buffer.concat([buf, p]);
    const r = parseClientHello(buf);
    if (r !== 'incomplete') return r;
  }
  return 'incomplete';
}

interface Built {
  flight: Buffer;
  expected: ClientHelloResult;
}

function build(data: Buffer): Built {
  const b = new Bytes(data);
  const nameLen = b.u8() % 70;
  let name = '';
  const odd = b.u8() < 16;
  for (let i = 0; i < nameLen; i++) name += odd && b.u8() < 24 ? b.pick([...ODD_CHARS]) : NAME_CHARS[b.u8() % NAME_CHARS.length];
  const withSni = b.u8() >= 32 && name.length > 0; // the builder leaves out an empty name
  const duplicateSni = withSni && b.u8() < 8;
  const extras: Array<[number, Buffer]> = [];
  const nExtras = b.u8() % 4;
  for (let i = 0; i < nExtras; i++) extras.push([b.pick(EXTRA_TYPES), b.take(b.u8() % 40)]);
  const recordSize = 1 + (b.u16() % 300);
  const trailing = b.take(b.u8() % 32);
  const noExtensions = !withSni && extras.length === 0 && b.u8() < 16;
  const msg = clientHelloMessage({ sni: withSni ? name : null, duplicateSni, extensions: extras, noExtensions });
  const hello = records(msg, recordSize);
  const types = extras.map(([t]) => t);
  const duplicate = duplicateSni || types.some((t, i) => BUILT_IN_TYPES.has(t) || types.indexOf(t) !== i);
  const nameOk = name.length >= 1 && /^[A-Za-z0-9._-]+$/.test(name);
  let expected: ClientHelloResult;
  if (duplicate || (withSni && !nameOk)) expected = 'malformed';
  else expected = { sni: withSni ? name.toLowerCase() : null, ech: types.some((t) => ECH_EXTENSIONS.has(t)), length: hello.length };
  return { flight: Buffer.concat([hello, trailing]), expected };
}

export function fuzz(data: Buffer): void {
  let flight = data;
  if (data.length > 0 && data[0] !== 0x16) {
    const built = build(data.subarray(1));
    flight = built.flight;
    same(parseClientHello(flight), built.expected, 'built hello read wrongly');
  }
  const whole = timed('parseClientHello', () => parseClientHello(flight));
  checkResult(flight, whole);
  if (typeof whole === 'object') {
    const more = Buffer.concat([flight.subarray(0, whole.length), Buffer.from('\x17\x03\x03\x00\x05hello')]);
    same(parseClientHello(more), whole, 'bytes after the hello changed the reading');
  }
  same(
    timed('parseClientHello as arriving', () => asArriving(chunks(flight))),
    whole,
    'reading as it arrives differs from whole',
  );
}
