/**
 * Starts the real gateway in-process on loopback port 0 with a real sqlite file in a temp
 * folder (or, with EGRESS_TEST_DB=postgres, a fresh database on the shared test PostgreSQL),
 * and gives tests a small client for its API. Tokens: `tok-a` → account `acct-a`,
 * `tok-b` → account `acct-b`.
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import { createLogger } from '../../src/log.js';
import { OPTIONS, flagOf, loadConfig } from '../../src/config.js';
import { DOORS, type ListenerName } from '../../src/doors/registry.js';
import { sharedPostgres } from './postgres.js';
import { tempDir } from './temp.js';
import { type Gateway, startGateway } from '../../src/wiring/gateway.js';

export const TOKEN_A = 'tok-a';
export const TOKEN_B = 'tok-b';

export interface TestGatewayOptions {
  /** Extra flags, e.g. { 'transparent-tls': '127.0.0.1:0' }. Values may be repeated with arrays. */
  flags?: Record<string, string | string[]>;
  /** Upstream DNS port on 127.0.0.1 (from startDnsUpstream). */
  upstreamDnsPort?: number;
  db?: string;
  /** A logger of the test's own (to read the lines); default: the process logger at EGRESS_TEST_LOG. */
  logger?: Logger;
}

export interface TestGateway {
  gw: Gateway;
  dir: string;
  /** host:port strings of each door that started. */
  addr(door: 'api' | ListenerName): { host: string; port: number };
  apiUrl: string;
  api: ApiClient;
  close(): Promise<void>;
}

export interface ApiResponse<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

export class ApiClient {
  constructor(
    readonly baseUrl: string,
    readonly token: string = TOKEN_A,
  ) {}

  as(token: string): ApiClient {
    return new ApiClient(this.baseUrl, token);
  }

  async call<T = any>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<ApiResponse<T>> {
    const res = await fetch(this.baseUrl + path, {
      method,
      headers: { authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: res.status, body: parsed as T, headers: res.headers };
  }

  /** Creates a policy and returns its id; throws on any non-200. */
  async policy(name: string, egress: Record<string, unknown>): Promise<string> {
    const r = await this.call('POST', '/v1/network-policies', { name, ...egress });
    if (r.status !== 200) throw new Error(`policy create failed: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.id as string;
  }

  async updatePolicy(id: string, egress: Record<string, unknown>): Promise<void> {
    const r = await this.call('POST', `/v1/network-policies/${id}`, egress);
    if (r.status !== 200) throw new Error(`policy update failed: ${r.status} ${JSON.stringify(r.body)}`);
  }

  /** Registers a running devbox with source addresses; returns id and proxy credentials. */
  async devbox(policyId: string | null, addresses: string[], name?: string): Promise<{ id: string; username: string; password: string }> {
    const r = await this.call('POST', '/v1/devboxes', {
      ...(name ? { name } : {}),
      ...(policyId ? { launch_parameters: { network_policy_id: policyId } } : {}),
      network: { addresses },
    });
    if (r.status !== 200) throw new Error(`devbox create failed: ${r.status} ${JSON.stringify(r.body)}`);
    return { id: r.body.id, username: r.body.proxy_credentials.username, password: r.body.proxy_credentials.password };
  }

  async attach(devboxId: string, policyId: string): Promise<void> {
    const r = await this.call('POST', `/v1/devboxes/${devboxId}`, { launch_parameters: { network_policy_id: policyId } });
    if (r.status !== 200) throw new Error(`devbox update failed: ${r.status} ${JSON.stringify(r.body)}`);
  }

  async shutdown(devboxId: string): Promise<void> {
    const r = await this.call('POST', `/v1/devboxes/${devboxId}/shutdown`);
    if (r.status !== 200) throw new Error(`devbox shutdown failed: ${r.status} ${JSON.stringify(r.body)}`);
  }
}

/** One process logger per level, as `serve` makes it (several gateways may run in one test file). */
const loggers = new Map<string, Logger>();
function loggerFor(level: string): Logger {
  let log = loggers.get(level);
  if (!log) loggers.set(level, (log = createLogger(level).log));
  return log;
}

export async function startTestGateway(opts: TestGatewayOptions = {}): Promise<TestGateway> {
  const dir = tempDir('test');
  const flags = new Map<string, string[]>([
    ['api', ['127.0.0.1:0']],
    // Every door that is on by default listens on a free port (a test turns the others on by flag).
    ...DOORS.filter((d) => OPTIONS.find((o) => o.key === d.setting)?.def() != null).map((d) => [flagOf(d.setting), ['127.0.0.1:0']] as [string, string[]]),
    ['db', [opts.db ?? (process.env.EGRESS_TEST_DB === 'postgres' ? await (await sharedPostgres()).createDatabase() : join(dir, 'egress.db'))]],
    ['api-token', [`${TOKEN_A}:acct-a`, `${TOKEN_B}:acct-b`]],
    ['allow-private', ['127.0.0.0/8']],
    ['upstream-dns', [`127.0.0.1:${opts.upstreamDnsPort ?? 9}`]],
    ['log-level', [process.env.EGRESS_TEST_LOG ?? 'silent']],
    ['shutdown-grace-ms', ['200']],
    ['secrets-key-file', [join(dir, 'secrets.key')]],
  ]);
  for (const [k, v] of Object.entries(opts.flags ?? {})) flags.set(k, Array.isArray(v) ? v : [v]);
  const config = loadConfig(flags, {});
  const gw = await startGateway(config, opts.logger ?? loggerFor(config.logLevel));
  const addr: TestGateway['addr'] = (door) => {
    const a = gw.doors[door];
    if (!a) throw new Error(`door ${door} did not start`);
    return a;
  };
  const apiUrl = `http://127.0.0.1:${addr('api').port}`;
  return { gw, dir, addr, apiUrl, api: new ApiClient(apiUrl), close: () => gw.close() };
}
