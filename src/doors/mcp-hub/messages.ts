/**
 * What the MCP hub does with JSON-RPC messages, both ways (pure; door.ts does the I/O).
 *
 * Devbox → upstream (`planRequest`): a POST body is one message or a batch. Forwarded:
 * `initialize`, `ping`, `tools/list`, `logging/setLevel`, the client notifications
 * (`initialized`, `cancelled`, `progress`, `roots/list_changed`), responses to the server's own
 * requests, and `tools/call` for an allowed tool (its name mapped back to the upstream's).
 * Refused with a JSON-RPC error, never forwarded: a `tools/call` for a tool not allowed
 * (-32602), every other method (`resources/*`, `prompts/*`, `completion/complete`, unknown
 * ones: -32601, since allowed_tools is the config's only grant), malformed messages (-32600).
 * A batch is all or nothing: one refused message and the whole batch is answered by the hub,
 * so no refused call can hide beside allowed ones.
 *
 * Upstream → devbox (`rewriteMessage`): `tools/list` results keep only allowed tools, renamed
 * `<service>.<tool>`; an `initialize` result loses the resources, prompts and completions
 * capabilities (the hub does not offer them); resource and prompt notifications are dropped.
 */
import type { ToolRules } from './rules.js';
import { printable } from './rules.js';

export interface JsonRpcError {
  jsonrpc: '2.0';
  id: string | number | null;
  error: { code: number; message: string };
}

export interface ToolCall {
  /** The name as the devbox sent it (printable form for logs), and the verdict. */
  tool: string;
  allowed: boolean;
  why?: string;
}

export interface Plan {
  /** The body to send upstream (rewritten), or null: nothing goes upstream. */
  forward: unknown;
  /** Answers the hub gives itself (when nothing is forwarded). */
  answers: JsonRpcError[];
  calls: ToolCall[];
  /** Methods refused (reason per message, for counting). */
  refused: Array<'tool_refused' | 'method_refused' | 'invalid_request'>;
  batch: boolean;
}

const FORWARDED = new Set(['initialize', 'ping', 'tools/list', 'tools/call', 'logging/setLevel', 'notifications/initialized', 'notifications/cancelled', 'notifications/progress', 'notifications/roots/list_changed']);

export const PARSE_ERROR: JsonRpcError = { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error: the body is not JSON' } };

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const idOf = (m: unknown): string | number | null => {
  if (!isObj(m)) return null;
  const id = m.id;
  return typeof id === 'string' || typeof id === 'number' ? id : null;
};

type Verdict = { ok: true; message: unknown } | { ok: false; code: number; message: string; reason: Plan['refused'][number]; notification: boolean };

function judge(m: unknown, rules: ToolRules, calls: ToolCall[]): Verdict {
  if (!isObj(m) || m.jsonrpc !== '2.0') return { ok: false, code: -32600, message: 'Invalid Request: not a JSON-RPC 2.0 message', reason: 'invalid_request', notification: false };
  const method = m.method;
  if (method === undefined) {
    // A response to a request of the server (sampling, elicitation, roots): the devbox's to give.
    if ('id' in m && ('result' in m || 'error' in m)) return { ok: true, message: m };
    return { ok: false, code: -32600, message: 'Invalid Request: no method', reason: 'invalid_request', notification: false };
  }
  const notification = !('id' in m);
  if (typeof method !== 'string') return { ok: false, code: -32600, message: 'Invalid Request: the method is not a string', reason: 'invalid_request', notification };
  if (!FORWARDED.has(method)) return { ok: false, code: -32601, message: `Method not found: ${printable(method, 64)} is not available through the MCP hub (tools only)`, reason: 'method_refused', notification };
  if (method !== 'tools/call') return { ok: true, message: m };
  const params = m.params;
  const name = isObj(params) ? params.name : undefined;
  const v = rules.call(name);
  const shown = typeof name === 'string' ? printable(name) : '(not a string)';
  if (!v.ok) {
    calls.push({ tool: shown, allowed: false, why: v.why });
    return { ok: false, code: -32602, message: `tool ${JSON.stringify(shown)} is not allowed: ${v.why}`, reason: 'tool_refused', notification };
  }
  calls.push({ tool: v.exposed, allowed: true });
  return { ok: true, message: { ...m, params: { ...(params as Obj), name: v.upstream } } };
}

export function planRequest(body: unknown, rules: ToolRules): Plan {
  const batch = Array.isArray(body);
  const calls: ToolCall[] = [];
  if (batch && body.length === 0) return { forward: null, answers: [{ jsonrpc: '2.0', id: null, error: { code: -32600, message: 'Invalid Request: empty batch' } }], calls, refused: ['invalid_request'], batch: false };
  const messages: unknown[] = batch ? body : [body];
  const verdicts = messages.map((m) => judge(m, rules, calls));
  const refused = verdicts.flatMap((v) => (v.ok ? [] : [v.reason]));
  if (refused.length === 0) return { forward: batch ? verdicts.map((v) => (v as { message: unknown }).message) : (verdicts[0] as { message: unknown }).message, answers: [], calls, refused, batch };
  const answers: JsonRpcError[] = [];
  messages.forEach((m, i) => {
    const v = verdicts[i]!;
    if (!v.ok) {
      if (!v.notification) answers.push({ jsonrpc: '2.0', id: idOf(m), error: { code: v.code, message: v.message } });
    } else if (isObj(m) && 'method' in m && 'id' in m) {
      answers.push({ jsonrpc: '2.0', id: idOf(m), error: { code: -32600, message: 'Invalid Request: the batch holds a message the MCP hub refuses, so none of it was sent' } });
    }
  });
  return { forward: null, answers, calls, refused, batch };
}

const DROPPED_NOTIFICATIONS = /^notifications\/(resources|prompts)\//;

/** An upstream message as the devbox sees it; null: dropped. */
export function rewriteMessage(m: unknown, rules: ToolRules): unknown {
  if (!isObj(m)) return m;
  if (typeof m.method === 'string' && DROPPED_NOTIFICATIONS.test(m.method)) return null;
  const result = m.result;
  if (!isObj(result)) return m;
  if (Array.isArray(result.tools)) {
    const tools: unknown[] = [];
    for (const t of result.tools) {
      if (!isObj(t)) continue;
      const exposed = rules.exposed(t.name);
      if (exposed !== null) tools.push({ ...t, name: exposed });
    }
    return { ...m, result: { ...result, tools } };
  }
  if (typeof result.protocolVersion === 'string' && isObj(result.capabilities)) {
    const { resources: _r, prompts: _p, completions: _c, ...capabilities } = result.capabilities;
    return { ...m, result: { ...result, capabilities } };
  }
  return m;
}

/** A body of one message or a batch, rewritten; null when nothing is left. */
export function rewriteBody(body: unknown, rules: ToolRules): unknown {
  if (!Array.isArray(body)) return rewriteMessage(body, rules);
  const out = body.map((m) => rewriteMessage(m, rules)).filter((m) => m !== null);
  return out.length === 0 ? null : out;
}
