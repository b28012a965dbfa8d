/**
 * Host name normalisation (src/policy/hostname.ts): every door and the policy compare
 * names in the form normalizeHost gives. The input is read as UTF-8 and as Latin-1.
 * Properties: no throw; a name is lower-case ASCII [a-z0-9._-], 1–253 characters, labels
 * 1–63, no trailing dot, and normalises to itself; an IP is the canonical text
 * parseIpLiteral gives and normalises to itself; the fast scan agrees (SCAN_OK means
 * "already normalised", and its hash is nameHash); an allowlist entry that is accepted is
 * normalised, `*.` only with two labels after it, and accepted again as itself.
 */
import { SCAN_OK, SCAN_OTHER, hostScan, nameHash, normalizeAllowedHostname, normalizeHost, scanHost } from '../../../src/policy/hostname.js';
import { parseIpLiteral } from '../../../src/policy/ip.js';
import { check, same, timed } from '../support/harness.js';

function checkName(name: string): void {
  check(/^[a-z0-9._-]+$/.test(name), `name ${JSON.stringify(name)} not plain lower-case`);
  check(name.length <= 253 && !name.endsWith('.'), `name ${JSON.stringify(name)} length or trailing dot`);
  for (const l of name.split('.')) check(l.length >= 1 && l.length <= 63, `label length in ${JSON.stringify(name)}`);
}

function host(s: string): void {
  const n = timed('normalizeHost', () => normalizeHost(s));
  if (n.kind === 'name') {
    checkName(n.name);
    same(normalizeHost(n.name), n, 'normalised name is not a fixed point');
  } else if (n.kind === 'ip') {
    const p = parseIpLiteral(n.ip);
    check(p !== null && p.ip === n.ip && p.family === n.family, `ip ${n.ip} not canonical`);
    same(normalizeHost(n.ip), n, 'normalised IP is not a fixed point');
  } else check(typeof n.why === 'string' && n.why.length > 0, 'invalid without a reason');
  const scan = scanHost(s);
  if (scan === SCAN_OK) same(n, { kind: 'name', name: s }, 'scanHost says normalised, normalizeHost disagrees');
  if (scan !== SCAN_OTHER) check(hostScan.hash === nameHash(s), 'scan hash differs from nameHash');
}

function entry(s: string): void {
  const r = timed('normalizeAllowedHostname', () => normalizeAllowedHostname(s));
  if (!r.ok) return;
  const wild = r.entry.startsWith('*.');
  const name = wild ? r.entry.slice(2) : r.entry;
  checkName(name);
  if (wild) check(name.includes('.') && r.entry.length <= 253, `wildcard entry ${r.entry}`);
  same(normalizeAllowedHostname(r.entry), r, 'an accepted entry is not accepted as itself');
  const n = normalizeHost(s.startsWith('*.') ? s.slice(2) : s);
  check(n.kind === 'name' && n.name === name, 'entry and destination normalise differently');
}

export function fuzz(data: Buffer): void {
  const utf8 = data.toString('utf8');
  const latin1 = data.toString('latin1');
  host(utf8);
  entry(utf8);
  if (latin1 !== utf8) {
    host(latin1);
    entry(latin1);
  }
}
