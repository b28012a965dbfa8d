/**
 * Resource ids: a prefix and a 22-character suffix, 10 characters of millisecond time and
 * 12 of randomness, in lower-case Crockford base32. Fixed width and an alphabet in ASCII
 * order make lexical order equal creation order (within one process strictly: ids made in
 * the same millisecond count up from the previous one).
 */
import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
const TIME_CHARS = 10; // 50 bits, enough for ms timestamps until the year 37648
const RAND_CHARS = 12; // 60 bits
const RAND_MAX = (1n << 60n) - 1n;

function encode(value: bigint, width: number): string {
  let out = '';
  let v = value;
  for (let i = 0; i < width; i++) {
    out = ALPHABET[Number(v & 31n)]! + out;
    v >>= 5n;
  }
  return out;
}

function random60(): bigint {
  return randomBytes(8).readBigUInt64BE() & RAND_MAX;
}

let lastMs = -1;
let lastRand = 0n;

/** A new id with the given prefix (`npol_`, `dbx_`), greater than every id this process made before. */
export function newId(prefix: string, now: number = Date.now()): string {
  let ms = Math.max(now, lastMs);
  let rand: bigint;
  if (ms === lastMs) {
    rand = lastRand + 1n + (random60() & 0xffffn);
    if (rand > RAND_MAX) {
      ms += 1;
      rand = random60() >> 1n;
    }
  } else {
    rand = random60() >> 1n; // leave room to count up within the millisecond
  }
  lastMs = ms;
  lastRand = rand;
  return `${prefix}${encode(BigInt(ms), TIME_CHARS)}${encode(rand, RAND_CHARS)}`;
}

/** Random lower-case alphanumeric string (tunnel keys). */
export function randomAlnum(length: number): string {
  const chars = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = randomBytes(length * 2);
  let out = '';
  for (let i = 0; out.length < length && i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b < 252) out += chars[b % 36]; // 252 = 7 * 36: no modulo bias
  }
  return out.length === length ? out : out + randomAlnum(length - out.length);
}

/** Random url-safe secret with the given number of bytes of entropy. */
export function randomSecret(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}
