/**
 * SOCKS5 handshake (src/doors/socks5/parser.ts), driven as the door drives it: greeting,
 * then RFC 1929 auth when the client offers username/password, then the request.
 * Properties: no throw; every message well-formed (methods 1–255, non-empty username,
 * canonical IPv4/IPv6 text, domain 1–255 bytes, port 1–65535); errors carry a known kind and
 * an RFC 1928 reply code; bytes consumed + bytes left = bytes pushed; and the same input cut
 * into random chunks gives exactly the same steps as whole.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { METHOD_USER_PASS, Reply, Socks5Parser, type Step } from '../../../src/doors/socks5/parser.js';
import { parseIpLiteral } from '../../../src/policy/ip.js';
import { check, chunks, same, timed } from '../support/harness.js';

const REPLIES = new Set<number>(Object.values(Reply));
type Phase = 'greeting' | 'auth' | 'request' | 'done';

interface Outcome {
  steps: unknown[];
  rest: number;
}

function checkStep(phase: Phase, s: Step<unknown>): void {
  if (s.type === 'error') {
    check(s.reply === null || REPLIES.has(s.reply), `unknown reply code ${s.reply}`);
    return;
  }
  if (s.type !== 'message') return;
  const m = s.message as Record<string, unknown>;
  if (phase === 'greeting') {
    const methods = m.methods as number[];
    check(methods.length >= 1 && methods.length <= 255, 'greeting: 1..255 methods');
  } else if (phase === 'auth') {
    check((m.username as string).length > 0, 'auth: empty username accepted');
  } else {
    const { addressType, host, port } = m as { addressType: string; host: string; port: number };
    check(Number.isInteger(port) && port >= 1 && port <= 65535, `request: port ${port}`);
    check(host.length > 0, 'request: empty host');
    if (addressType === 'ipv4') check(isIPv4(host), `request: ipv4 text ${host}`);
    if (addressType === 'ipv6') {
      // IPv6 text, or an IPv4-mapped address given as the IPv4 address it carries (the one
      // formatter, policy/ip.ts, that the DNS path and the engine share).
      check(isIPv6(host) || isIPv4(host), `request: ipv6 text ${host}`);
      // The text is canonical: the policy's own parser gives back the same address.
      const p = parseIpLiteral(host);
      check(p !== null && p.ip === host, `request: ipv6 ${host} not canonical (${p?.ip})`);
    }
  }
}

/** Runs the handshake over the given chunks, as the door does after each read. */
function drive(parts: Buffer[]): Outcome {
  const p = new Socks5Parser();
  const steps: unknown[] = [];
  let phase: Phase = 'greeting';
  let useAuth = false;
  let pushed = 0;
  let consumed = 0;
  for (const part of parts) {
    p.push(part);
    pushed += part.length;
    while (phase !== 'done') {
      const before = p.buffered;
      const s: Step<unknown> = phase === 'greeting' ? p.greeting() : phase === 'auth' ? p.auth() : p.request();
      checkStep(phase, s);
      if (s.type === 'need') {
        check(p.buffered === before, 'need consumed bytes');
        break;
      }
      consumed += before - p.buffered;
      steps.push({ phase, s });
      if (s.type === 'error') {
        phase = 'done';
        break;
      }
      if (phase === 'greeting') {
        useAuth = (s.message as { methods: number[] }).methods.includes(METHOD_USER_PASS);
        phase = useAuth ? 'auth' : 'request';
      } else if (phase === 'auth') phase = 'request';
      else phase = 'done';
    }
    if (phase === 'done') break;
  }
  check(consumed + p.buffered === pushed, `bytes: consumed ${consumed} + buffered ${p.buffered} != pushed ${pushed}`);
  return { steps, rest: p.takeRest().length };
}

export function fuzz(data: Buffer): void {
  const whole = timed('socks5 whole', () => drive([data]));
  const parts = chunks(data);
  const split = timed('socks5 split', () => drive(parts));
  // Splitting may stop earlier (the door stops reading once the request is parsed), so
  // compare the steps; what is left over may differ only by bytes not yet pushed.
  same(split.steps, whole.steps, 'split steps differ from whole');
}
