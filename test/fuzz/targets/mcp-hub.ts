/**
 * The MCP hub's readers of hostile input (src/doors/mcp-hub/): the SSE scanner that rewrites an
 * upstream's stream event by event, and the JSON-RPC plan and rewrite each event's data goes
 * through. The input is an SSE stream (UTF-8, split anywhere).
 * Properties: only SseTooLarge is thrown; the same events come out however the bytes are cut;
 * every event ends with its one blank line; a tools list that comes out names only allowed
 * tools under the service prefix; a request plan that forwards anything refused nothing, and
 * every tools/call it forwards is an allowed tool under its upstream name.
 */
import { StringDecoder } from 'node:string_decoder';
import { planRequest, rewriteBody } from '../../../src/doors/mcp-hub/messages.js';
import { ToolRules } from '../../../src/doors/mcp-hub/rules.js';
import { SseScanner, SseTooLarge } from '../../../src/doors/mcp-hub/sse.js';
import { check, chunks, same, timed } from '../support/harness.js';

const rules = new ToolRules('github-readonly', ['github.search_*', 'github.get_issue']);
const MAX_EVENT = 4096;

type Outcome = { events: string[]; tooLarge: boolean };

function drive(parts: Buffer[]): Outcome {
  const scanner = new SseScanner((m) => rewriteBody(m, rules), MAX_EVENT);
  const decoder = new StringDecoder('utf8');
  const events: string[] = [];
  try {
    for (const p of parts) events.push(...scanner.push(decoder.write(p)));
    events.push(...scanner.push(decoder.end()), ...scanner.end());
  } catch (e) {
    if (!(e instanceof SseTooLarge)) throw e;
    return { events, tooLarge: true };
  }
  return { events, tooLarge: false };
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function checkListed(m: unknown): void {
  for (const msg of Array.isArray(m) ? m : [m]) {
    if (!isObj(msg) || !isObj(msg.result) || !Array.isArray(msg.result.tools)) continue;
    for (const t of msg.result.tools) {
      check(isObj(t) && rules.call(t.name).ok, `listed tool ${JSON.stringify(isObj(t) ? t.name : t)} is not callable`);
    }
  }
}

function checkPlan(body: unknown): void {
  const plan = planRequest(body, rules);
  if (plan.forward === null) return;
  check(plan.refused.length === 0, 'forwarded a plan that refused something');
  for (const m of Array.isArray(plan.forward) ? plan.forward : [plan.forward]) {
    if (!isObj(m) || m.method !== 'tools/call') continue;
    const name = isObj(m.params) ? m.params.name : undefined;
    check(typeof name === 'string' && rules.call(`github.${name}`).ok, `forwarded tools/call ${JSON.stringify(name)}`);
  }
}

export function fuzz(data: Buffer): void {
  const whole = timed('mcp sse whole', () => drive([data]));
  const split = timed('mcp sse split', () => drive(chunks(data)));
  same(split, whole, 'split events differ from whole');
  for (const e of whole.events) {
    check(e.endsWith('\n\n') && e.indexOf('\n\n') === e.length - 2, `event not ended by exactly one blank line: ${JSON.stringify(e.slice(0, 80))}`);
    for (const line of e.split('\n')) {
      if (!line.startsWith('data: ')) continue;
      let json: unknown;
      try {
        json = JSON.parse(line.slice(6));
      } catch {
        continue;
      }
      checkListed(json);
    }
  }
  // The input's own data lines as requests from a devbox.
  for (const line of data.toString('utf8').split('\n')) {
    if (!line.startsWith('data:')) continue;
    let json: unknown;
    try {
      json = JSON.parse(line.slice(5));
    } catch {
      continue;
    }
    timed('mcp plan', () => checkPlan(json));
  }
}
