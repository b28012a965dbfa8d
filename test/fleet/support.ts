/**
 * A fleet on loopback, from real processes: control-plane replicas (`serve --db … --nats …`),
 * sidecars (`serve --follow … --host-id …` with their own local --db), one nats-server
 * (test/support/nats.ts), a DNS upstream and an origin. Replicas start through one helper,
 * `startReplica(db, …)`, `db` a fresh database on a real PostgreSQL (test/support/postgres.ts).
 */
import { rmSync } from 'node:fs';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { type RunningServe, killAll, startServe } from '../support/serve-process.js';
import { waitFor } from '../support/wait.js';
import { type DnsUpstream, loopbackRecords, startDnsUpstream } from '../support/dns-upstream.js';
import { type NatsServer, startNats } from '../support/nats.js';
import { sharedPostgres } from '../support/postgres.js';
import { type Origin, startHttpOrigin } from '../support/origin.js';
import { tempDir as registeredTempDir } from '../support/temp.js';

export const TOKEN = 'egw_fleet_test_token_0123456789abcdef';
export const ACCOUNT = 'default';

export interface Node extends RunningServe {
  /** The HTTP proxy door's port. */
  proxyPort: number;
}

/** Fleet tests start several gateways at once on a shared 2-core box: give each time to come up. */
const START_MS = 240_000;

function withProxy(s: RunningServe): Node {
  const line = s
    .out()
    .split('\n')
    .find((l) => l.includes('egress-gateway listening'))!;
  const port = Number(/"http-proxy":"127\.0\.0\.1:(\d+)"/.exec(line)?.[1] ?? 0);
  return Object.assign(s, { proxyPort: port });
}

/** A control-plane replica on `db` (sqlite path now, postgres:// URL once that backend lands), publishing to NATS. */
export async function startReplica(db: string, nats: string, env: Record<string, string> = {}, extra: string[] = []): Promise<Node> {
  return withProxy(await startServe(['--db', db, '--nats', nats, '--api-token', `${TOKEN}:${ACCOUNT}`, '--log-level', 'info', ...extra], env, START_MS));
}

/** A sidecar following NATS for one host, with its local snapshot in `db`. */
export async function startSidecar(nats: string, hostId: string, db: string, dnsPort: number, extra: string[] = []): Promise<Node> {
  return withProxy(await startServe(['--follow', nats, '--host-id', hostId, '--db', db, '--api-token', `${TOKEN}:${ACCOUNT}`, '--allow-private', '127.0.0.0/8', '--upstream-dns', `127.0.0.1:${dnsPort}`, '--log-level', 'info', ...extra], {}, START_MS));
}

/** A folder removed by `remove()`, or after the test file if a test fails first (test/support/temp.ts). */
export function tempDir(): { dir: string; remove(): void } {
  const dir = registeredTempDir('fleet');
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function api<T = Record<string, unknown>>(base: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as T };
}

export async function createPolicy(base: string, name: string, hostnames: string[]): Promise<string> {
  const r = await api<{ id: string }>(base, 'POST', '/v1/network-policies', { name, allowed_hostnames: hostnames });
  if (r.status !== 200) throw new Error(`create policy: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.id;
}

/** Idempotent, so tried once more when a kept-alive connection was closed under the request. */
export async function setHostnames(base: string, id: string, hostnames: string[]): Promise<void> {
  const send = () => api(base, 'POST', `/v1/network-policies/${id}`, { allowed_hostnames: hostnames });
  const r = await send().catch(send);
  if (r.status !== 200) throw new Error(`update policy: ${r.status} ${JSON.stringify(r.body)}`);
}

/** Registers a devbox on the control plane, placed on `hostId` (network.host_id). */
export async function registerDevbox(base: string, hostId: string, policyId: string | null): Promise<{ id: string; password: string }> {
  const r = await api<{ id: string; proxy_credentials: { password: string } }>(base, 'POST', '/v1/devboxes', {
    network: { host_id: hostId },
    launch_parameters: { network_policy_id: policyId },
  });
  if (r.status !== 200) throw new Error(`register devbox: ${r.status} ${JSON.stringify(r.body)}`);
  return { id: r.body.id, password: r.body.proxy_credentials.password };
}

/** The sidecar's decision for a devbox and destination: 'allow', 'deny', or 'unknown' (not in its snapshot). */
export async function decisionAt(sidecar: string, devboxId: string, host: string, port = 443): Promise<'allow' | 'deny' | 'unknown' | 'error'> {
  try {
    const r = await api<{ decision?: string; allowed?: boolean }>(sidecar, 'POST', '/v1/egress/check', { devbox_id: devboxId, host, port });
    if (r.status === 400) return 'unknown';
    if (r.status !== 200) return 'error';
    return r.body.decision === 'allow' ? 'allow' : 'deny';
  } catch {
    return 'error';
  }
}

/** Polls an async condition until it holds (deadline, never a fixed sleep). */
export async function until(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function health(base: string, path = '/healthz'): Promise<{ status: number; body: Record<string, unknown> }> {
  return api(base, 'GET', path);
}

export { waitFor };

/** What every fleet test runs beside its gateways: NATS, a DNS upstream for the test names, an origin, a folder. */
export interface FleetBase {
  nats: NatsServer;
  dns: DnsUpstream;
  origin: Origin;
  dir: string;
  /** The control plane's database: a fresh PostgreSQL database on the file's shared server. */
  controlDb: string;
  /** Stops the given gateways, then everything here. */
  close(nodes: Array<Node | undefined>): Promise<void>;
}

export const NAMES = ['allowed.test', 'other.test', ...Array.from({ length: 8 }, (_, i) => `g${i}.test`)];

export async function fleetBase(): Promise<FleetBase> {
  const nats = await startNats();
  const dns = await startDnsUpstream({ records: loopbackRecords(NAMES) });
  const origin = await startHttpOrigin();
  const tmp = tempDir();
  const controlDb = await (await sharedPostgres()).createDatabase();
  return {
    nats,
    dns,
    origin,
    dir: tmp.dir,
    controlDb,
    async close(nodes) {
      await Promise.allSettled(nodes.filter((n): n is Node => n !== undefined).map((n) => n.stop()));
      killAll();
      await origin.close();
      await dns.close();
      await nats.close();
      tmp.remove();
    },
  };
}

/** A NATS client of the test's own, to look at the bucket (watermark, stream state). */
export async function bucketLook(url: string, bucket = 'egress-policy') {
  const nc = await connect({ servers: url });
  const kv = await new Kvm(nc).open(bucket);
  const jsm = await jetstreamManager(nc);
  return {
    async watermark(): Promise<number> {
      const e = await kv.get('meta.watermark');
      return e ? (JSON.parse(new TextDecoder().decode(e.value)) as { seq: number }).seq : 0;
    },
    async firstSeq(): Promise<number> {
      return (await jsm.streams.info(`KV_${bucket}`)).state.first_seq;
    },
    /** The revisions the bucket still holds for a key (its history). */
    async revisions(key: string): Promise<number[]> {
      const out: number[] = [];
      for await (const e of await kv.history({ key })) out.push(e.revision);
      return out;
    },
    close: () => nc.close(),
  };
}
