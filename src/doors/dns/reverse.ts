/**
 * Reverse (PTR) names for private and devbox address space are answered by the door
 * itself (NXDOMAIN, authoritative) and never sent upstream: they would leak the devbox
 * network's layout, and the upstream cannot know them anyway (RFC 6303).
 */
import { NON_GLOBAL_RANGES } from '../../policy/guardrails.js';
import { type Cidr, cidrContains, parseCidr, parseIpLiteral } from '../../policy/ip.js';
import type { PolicyEngine } from '../../policy/engine.js';

const RANGES: Cidr[] = NON_GLOBAL_RANGES.map((t) => parseCidr(t)).filter((c): c is Cidr => !('error' in c));

/** True when name is under in-addr.arpa / ip6.arpa and names private or devbox address space. */
export function isLocalReverse(name: string, engine: Pick<PolicyEngine, 'identifyByAddress'>): boolean {
  if (name.endsWith('.in-addr.arpa') || name === 'in-addr.arpa') return v4Local(name, engine);
  if (name.endsWith('.ip6.arpa') || name === 'ip6.arpa') return v6Local(name, engine);
  return false;
}

function v4Local(name: string, engine: Pick<PolicyEngine, 'identifyByAddress'>): boolean {
  const labels = name.split('.').slice(0, -2).reverse();
  if (labels.length === 0 || labels.length > 4) return false;
  let v = 0;
  for (let i = 0; i < 4; i++) {
    const l = labels[i];
    let o = 0;
    if (l !== undefined) {
      if (!/^\d{1,3}$/.test(l)) return false;
      o = Number(l);
      if (o > 255) return false;
    }
    v = (v * 256 + o) >>> 0;
  }
  const bits = labels.length * 8;
  const words = new Uint32Array([v]);
  if (labels.length === 4) {
    const ip = `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
    if (engine.identifyByAddress(ip).devboxId !== null) return true;
  }
  return RANGES.some((c) => c.family === 4 && c.prefix <= bits && cidrContains(c, { family: 4, words }));
}

function v6Local(name: string, engine: Pick<PolicyEngine, 'identifyByAddress'>): boolean {
  const nibbles = name.split('.').slice(0, -2).reverse();
  if (nibbles.length === 0 || nibbles.length > 32) return false;
  const words = new Uint32Array(4);
  for (let i = 0; i < nibbles.length; i++) {
    const n = nibbles[i]!;
    if (!/^[0-9a-f]$/.test(n)) return false;
    words[i >> 3] = (words[i >> 3]! | (parseInt(n, 16) << (28 - (i & 7) * 4))) >>> 0;
  }
  const bits = nibbles.length * 4;
  if (nibbles.length === 32) {
    const groups: string[] = [];
    for (let i = 0; i < 8; i++) groups.push(((words[i >> 1]! >>> (i & 1 ? 0 : 16)) & 0xffff).toString(16));
    const ip = parseIpLiteral(groups.join(':'));
    if (ip && engine.identifyByAddress(ip.ip).devboxId !== null) return true;
  }
  return RANGES.some((c) => c.family === 6 && c.prefix <= bits && cidrContains(c, { family: 6, words }));
}
