/**
 * DNS wire format (src/resolver/wire.ts) and the answer path that cleans upstream answers for
 * the cache (prepareAnswer, src/resolver/cache.ts). Every input is read as a query, as an
 * answer and as SVCB/HTTPS rdata. Properties: no throw; a parsed query has a lower-case
 * name of at most 253 characters with 1–63 character labels (plain names only [a-z0-9_-]),
 * its question inside the message, an advertised size ≥ 512; the question reads the same
 * through dns-packet; the door's own replies to it are answers (never answered back) with
 * the rcode set; an inspected answer's offsets lie inside it and its addresses are IPs; a
 * cleaned answer reads again, carries no OPT and no ECH and keeps TTLs within bounds;
 * rdata with `ech` stripped no longer carries `ech`.
 */
import { isIP } from 'node:net';
import dnsPacket from 'dns-packet';
import { prepareAnswer } from '../../../src/resolver/cache.js';
import { QR, RCODE, SVC_ECH, emptyReply, inspectAnswer, parseQuery, stripSvcbEch, svcbHasKey } from '../../../src/resolver/wire.js';
import { check, same, timed } from '../support/harness.js';

const BOUNDS = { minTtl: 5, maxTtl: 3600 };

function query(msg: Buffer): void {
  const q = timed('parseQuery', () => parseQuery(msg));
  if ('drop' in q) {
    if (q.drop) return;
    check(q.qEnd >= 12 && q.qEnd <= msg.length, `problem qEnd ${q.qEnd}`);
    const r = emptyReply(msg, q.qEnd, q.rcode, null);
    check('drop' in parseQuery(r) && (parseQuery(r) as { drop: boolean }).drop, 'a refusal would be answered back');
    check((r.readUInt16BE(2) & 0xf) === q.rcode, 'rcode not set');
    return;
  }
  check(q.id === msg.readUInt16BE(0) && (q.flags & QR) === 0, 'id or flags');
  check(q.qEnd > 12 && q.qEnd <= msg.length, `qEnd ${q.qEnd}`);
  check(q.name.length <= 253 && q.name === q.name.toLowerCase(), `name ${JSON.stringify(q.name)}`);
  // (a label of a name that is not plain may hold a '.': such names are never forwarded)
  if (q.plain && q.name !== '') for (const l of q.name.split('.')) check(l.length >= 1 && l.length <= 63, `label ${JSON.stringify(l)}`);
  if (q.plain) check(/^([a-z0-9_-]+(\.[a-z0-9_-]+)*)?$/.test(q.name), `plain name ${JSON.stringify(q.name)}`);
  check(q.udpSize >= 512 && q.udpSize <= 65535, `udpSize ${q.udpSize}`);
  if (q.plain) {
    // The question alone, through an independent decoder.
    const alone = Buffer.concat([msg.subarray(0, 4), Buffer.from([0, 1, 0, 0, 0, 0, 0, 0]), msg.subarray(12, q.qEnd)]);
    const d = dnsPacket.decode(alone);
    same(d.questions?.[0]?.name.toLowerCase() ?? null, q.name === '' ? '.' : q.name, 'dns-packet reads another name');
  }
  for (const rcode of [RCODE.REFUSED, RCODE.NXDOMAIN]) {
    const r = emptyReply(msg, q.qEnd, rcode, null);
    const info = inspectAnswer(r);
    check(info !== null && info.rcode === rcode && info.qEnd === q.qEnd, 'own reply does not read back');
    check('drop' in parseQuery(r), 'own reply would be answered');
  }
}

function answer(msg: Buffer): void {
  const info = timed('inspectAnswer', () => inspectAnswer(msg));
  if (info !== null) {
    check(info.qEnd >= 12 && info.qEnd <= msg.length, `qEnd ${info.qEnd}`);
    for (const off of info.ttlOffsets) check(off >= 12 && off + 4 <= msg.length, `ttl offset ${off}`);
    check(info.optAt < 0 || info.optAt + info.optLen <= msg.length, 'OPT outside');
    for (const a of info.addresses) check(isIP(a) !== 0, `address ${a}`);
    check(info.minTtl >= -1, 'minTtl');
  }
  const prepared = timed('prepareAnswer', () => prepareAnswer(msg, BOUNDS, 0));
  if (prepared === null) return;
  check(info !== null, 'an answer inspectAnswer refuses was cached');
  const again = inspectAnswer(prepared.entry.bytes);
  check(again !== null, 'cleaned answer does not read');
  check(!again.hasEch, 'cleaned answer still carries ECH');
  check(again.optAt < 0, 'cleaned answer keeps OPT');
  for (const t of prepared.entry.ttls) check(t >= BOUNDS.minTtl && t <= BOUNDS.maxTtl, `ttl ${t} out of bounds`);
  check(prepared.ttl >= 0 && prepared.ttl <= BOUNDS.maxTtl, `cache ttl ${prepared.ttl}`);
}

function rdata(data: Buffer): void {
  const stripped = timed('stripSvcbEch', () => stripSvcbEch(data));
  if (stripped === null) return;
  check(!svcbHasKey(stripped, 0, stripped.length, SVC_ECH), 'ech left in stripped rdata');
  same(stripSvcbEch(stripped), stripped, 'stripping twice changes the rdata');
}

export function fuzz(data: Buffer): void {
  query(data);
  answer(data);
  rdata(data);
}
