/**
 * Who may use a credential door, decided per request: the token the devbox presents (found by
 * its SHA-256), bound to the devbox the source address identifies, of the account that owns the
 * config and secret, and that devbox's policy having the door's toggle on right now.
 * Refusals: 401 (missing, unknown or foreign token; config or secret gone), 403 (toggle off or
 * policy missing). Every refusal is counted, logged and recorded through the Gate.
 */
import { createHash } from 'node:crypto';
import type http from 'node:http';
import type { AgentGatewayConfig, AgentToken, McpConfig } from '../../policy/credentials.js';
import { type Decision, type Door, type Reason, denial } from '../../policy/decision.js';
import type { Identity } from '../../policy/engine.js';
import type { AgentContext } from './agent-server.js';
import { agentRefusals } from './agent-metrics.js';

export type Admitted<C> = { ok: true; identity: Identity; token: AgentToken; config: C; secret: string; decision: Decision; tokenText: string; tokenHeader: string };
export type Refused = { ok: false; status: 401 | 403 | 503; reason: Reason; message: string; identity: Identity; config: string };

/** Header values longer than this are not tokens (nothing is hashed past it). */
const MAX_TOKEN = 512;
/** Lookups spent on headers other than Authorization and x-api-key (each is a store read). */
const MAX_OTHER_LOOKUPS = 4;
/** Headers that never carry a mechanism's token (not looked up). */
const NOT_TOKENS: ReadonlySet<string> = new Set([
  'host',
  'accept',
  'accept-encoding',
  'accept-language',
  'content-type',
  'content-length',
  'user-agent',
  'connection',
  'transfer-encoding',
  'cache-control',
  'cookie',
  'origin',
  'referer',
  'anthropic-version',
  'openai-organization',
  'openai-project',
]);
const TOKEN_SHAPE = /^[\x21-\x7e]{16,512}$/;

function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

/** A candidate token in an `Authorization` value: `Bearer x` (any case), else the whole value. */
function fromAuthorization(v: string): string {
  const sp = v.indexOf(' ');
  return sp > 0 && v.slice(0, sp).toLowerCase() === 'bearer' ? v.slice(sp + 1).trim() : v.trim();
}

/**
 * The devbox token in a request: `Authorization: Bearer …` or `x-api-key` first (what the
 * Anthropic and OpenAI SDKs send); else any other header whose value is a token of a config
 * whose mechanism is that header. Linear in the head's size; values are never logged.
 */
function findToken(ctx: AgentContext, raw: readonly string[]): { token: AgentToken; text: string; header: string } | null {
  const creds = ctx.credentials!;
  let others = 0;
  for (const pass of [0, 1]) {
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toLowerCase();
      const primary = name === 'authorization' || name === 'x-api-key';
      if ((pass === 0) !== primary) continue;
      const value = raw[i + 1]!;
      if (value.length === 0 || value.length > MAX_TOKEN) continue;
      // A head of many headers costs a handful of store reads, never one per header.
      if (pass === 1 && (NOT_TOKENS.has(name) || !TOKEN_SHAPE.test(value) || ++others > MAX_OTHER_LOOKUPS)) continue;
      const text = name === 'authorization' ? fromAuthorization(value) : value.trim();
      const token = creds.agentToken(sha256(text));
      if (token === undefined) continue;
      if (pass === 1) {
        const cfg = token.kind === 'gateway' ? creds.gatewayConfig(token.config_id) : creds.mcpConfig(token.config_id);
        if (cfg?.auth_mechanism.type !== 'header' || cfg.auth_mechanism.key.toLowerCase() !== name) continue;
      }
      return { token, text, header: name };
    }
  }
  return null;
}

/** Admits a request to `door` (kind gateway: agent gateway; kind mcp: MCP hub) or says why not. */
export function admitAgent<C extends AgentGatewayConfig | McpConfig>(ctx: AgentContext, door: Door, req: http.IncomingMessage): Admitted<C> | Refused {
  const identity = ctx.engine.identifyByAddress(req.socket.remoteAddress ?? '');
  const kind = door === 'mcp-hub' ? 'mcp' : 'gateway';
  const refuse = (status: Refused['status'], reason: Reason, message: string, config = '', policy?: Pick<Decision, 'policyId' | 'policyVersion'>, host: string = door): Refused => {
    agentRefusals.labels(door, identity.devboxId ?? '', config, reason).inc();
    ctx.gate.record(identity, door, denial(reason, host, policy), 0);
    return { ok: false, status, reason, message, identity, config };
  };
  const creds = ctx.credentials;
  if (creds === undefined) return refuse(503, 'bad_token', 'this gateway has no credential store');
  // Only a running devbox's own address can hold a token: anyone else is refused before any
  // token is hashed or looked up.
  if (identity.devboxId === null) return refuse(401, 'bad_token', 'this address is not a running devbox');
  const found = findToken(ctx, req.rawHeaders);
  if (found === null || found.token.kind !== kind) return refuse(401, 'bad_token', `missing or unknown ${kind} token`);
  const { token } = found;
  // The token is the devbox's only when it comes from that running devbox's own address.
  if (identity.devboxId !== token.devbox_id) return refuse(401, 'bad_token', 'this token does not belong to the devbox at this address', token.config_id);
  const devbox = ctx.engine.devbox(token.devbox_id);
  if (devbox === undefined || devbox.account_id !== token.account_id) return refuse(401, 'bad_token', 'this token does not belong to the devbox at this address', token.config_id);
  const config = (kind === 'gateway' ? creds.gatewayConfig(token.config_id) : creds.mcpConfig(token.config_id)) as C | undefined;
  if (config === undefined || (config.account_id !== null && config.account_id !== token.account_id)) return refuse(401, 'bad_token', "the token's config no longer exists", token.config_id);
  const host = hostOf(config.endpoint);
  const secret = creds.secretValue(token.account_id, token.secret_id);
  if (secret === undefined) return refuse(401, 'bad_token', "the token's secret no longer exists", config.id, undefined, host);
  const policy = ctx.engine.policyOf(token.devbox_id);
  if (policy === undefined) return refuse(401, 'bad_token', 'the devbox is not running', config.id, undefined, host);
  if (policy === null) return refuse(403, 'policy_missing', "the devbox's network policy does not exist", config.id, { policyId: devbox.network_policy_id, policyVersion: null }, host);
  const ref = { policyId: policy.id, policyVersion: policy.version };
  const on = kind === 'gateway' ? policy.agentGateway : policy.mcpGateway;
  if (!on) return refuse(403, 'gateway_disabled', `the devbox's network policy does not allow the ${kind === 'gateway' ? 'agent gateway (allow_agent_gateway)' : 'MCP hub (allow_mcp_gateway)'}`, config.id, ref, host);
  const decision: Decision = { allow: true, reason: kind === 'gateway' ? 'agent_gateway' : 'mcp_gateway', matched: config.id, ...ref, host, hostKind: 'name' };
  ctx.gate.record(identity, door, decision, 0);
  return { ok: true, identity, token, config, secret, decision, tokenText: found.text, tokenHeader: found.header };
}

function hostOf(endpoint: string): string {
  try {
    return new URL(endpoint).hostname;
  } catch {
    return 'invalid-endpoint';
  }
}

/** A refusal in JSON: `{"error":{"type":reason,"message":…}}` (what the SDKs read as an API error). */
export function sendAgentError(res: http.ServerResponse, status: number, reason: string, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ type: 'error', error: { type: reason, message } }) + '\n';
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', 'x-egress-denied-reason': reason });
  res.end(body);
}
