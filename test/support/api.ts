/**
 * Starts the real API (serveApi) on 127.0.0.1:0 with a real store — a sqlite file in a temp
 * dir, or with EGRESS_TEST_DB=postgres a fresh database on a real PostgreSQL (see
 * vitest.config.ts: the API suite runs against both) — a real PolicyEngine on what the data
 * plane reads, and two accounts' tokens.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadConfig, secretsKeyPath, type GatewayConfig } from '../../src/config.js';
import { PolicyEngine } from '../../src/policy/engine.js';
import { serveApi } from '../../src/api/index.js';
import { localPlane } from '../../src/api/plane.js';
import type { RunningDoor } from '../../src/doors/floor/context.js';
import type { PolicySource } from '../../src/policy/source.js';
import type { ControlStore } from '../../src/store/backend.js';
import { openPlaneStore } from '../../src/store/open.js';
import { sharedPostgres } from '../support/postgres.js';
import { tempDir as registeredTempDir } from './temp.js';

/** The backend this run of the API suite uses (vitest.config.ts runs it once per backend). */
export const TEST_BACKEND: 'sqlite' | 'postgres' = process.env.EGRESS_TEST_DB === 'postgres' ? 'postgres' : 'sqlite';

/** A fresh store for one test: a sqlite path in dir, or a new PostgreSQL database's URL. */
export async function testDb(dir: string): Promise<string> {
  if (TEST_BACKEND === 'sqlite') return join(dir, 'db', 'egress.db');
  return (await sharedPostgres()).createDatabase();
}

export const TOKEN_A = 'token-alpha';
export const TOKEN_B = 'token-bravo';
export const ACCOUNT_A = 'acct_alpha';
export const ACCOUNT_B = 'acct_bravo';

export interface TestApi {
  base: string;
  port: number;
  dir: string;
  /** The --db value: a sqlite path or a postgres:// URL. */
  dbPath: string;
  /** What the doors' engine reads (the sqlite store, or the copy following PostgreSQL). */
  store: PolicySource;
  /** The API's store. */
  control: ControlStore;
  engine: PolicyEngine;
  config: GatewayConfig;
  door: RunningDoor;
  /** Stops the API and closes the store (the db file stays). */
  stop(): Promise<void>;
  /** stop() and delete the temp dir. */
  close(): Promise<void>;
}

/** A temporary folder, removed after the test file (test/support/temp.ts) if the test does not remove it first. */
export function tempDir(): string {
  return registeredTempDir('api');
}

export async function startTestApi(opts: { dir?: string; db?: string; extraFlags?: [string, string[]][]; tokens?: string[]; logLines?: string[] } = {}): Promise<TestApi> {
  const dir = opts.dir ?? tempDir();
  const dbPath = opts.db ?? (opts.dir !== undefined && TEST_BACKEND === 'sqlite' ? join(dir, 'db', 'egress.db') : await testDb(dir));
  const flags = new Map<string, string[]>([
    ['api', ['127.0.0.1:0']],
    ['http-proxy', ['off']],
    ['socks', ['off']],
    ['dns', ['off']],
    ['upstream-dns', ['127.0.0.1:53']],
    ['db', [dbPath]],
    ['api-token', opts.tokens ?? [`${TOKEN_A}:${ACCOUNT_A}`, `${TOKEN_B}:${ACCOUNT_B}`]],
    ['log-level', ['silent']],
    ['secrets-key-file', [join(dir, 'secrets.key')]],
    ...(opts.extraFlags ?? []),
  ]);
  const config = loadConfig(flags, {});
  const plane = await openPlaneStore(config.db, { secrets: { keyFile: secretsKeyPath(config), create: true } });
  const control = plane.control;
  await control.tokens.ensure(config.apiTokens);
  const store = plane.source;
  const engine = new PolicyEngine(store, {
    toggles: { agentGateway: config.agentGatewayHosts, mcpGateway: config.mcpGatewayHosts, mirrors: config.mirrorHosts },
    allowPrivate: config.allowPrivate,
    tunnelDomain: config.tunnelDomain,
  });
  // With logLines, the API's log lines (info and above, JSON) are collected there.
  const lines = opts.logLines;
  const log = lines ? pino({ level: 'info' }, { write: (l: string) => void lines.push(l) }) : pino({ level: 'silent' });
  // A write is in the engine before its answer goes out (as with the API in its own process).
  const door = await serveApi({ config, log, plane: { ...localPlane(engine), changed: () => plane.refresh() } }, control, config.api);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await door.close(1000);
    engine.close();
    await plane.close();
  };
  return {
    base: `http://127.0.0.1:${door.address.port}`,
    port: door.address.port,
    dir,
    dbPath,
    store,
    control,
    engine,
    config,
    door,
    stop,
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface JsonResponse {
  status: number;
  headers: Headers;
  body: any;
  text: string;
}

/** fetch() (HTTP/1.1, undici) with a bearer token; body objects are sent as JSON, strings as given. */
export async function call(api: { base: string }, method: string, path: string, opts: { token?: string | null; body?: unknown; headers?: Record<string, string> } = {}): Promise<JsonResponse> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  const token = opts.token === undefined ? TOKEN_A : opts.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let body: string | undefined;
  if (opts.body !== undefined) {
    body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
    if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json';
  }
  const res = await fetch(`${api.base}${path}`, { method, headers, body });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers, body: parsed, text };
}

/** Asserts the one error shape and returns the message. */
export function errorOf(r: JsonResponse, status: number): string {
  if (r.status !== status) throw new Error(`expected ${status}, got ${r.status}: ${r.text}`);
  const e = r.body?.error;
  if (!e || typeof e.code !== 'string' || typeof e.message !== 'string' || e.status !== status) {
    throw new Error(`not the error shape: ${r.text}`);
  }
  return e.message as string;
}
