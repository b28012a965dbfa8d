/**
 * `npm run bench:fleet`: fleet propagation on loopback, real processes — 2 control-plane
 * replicas on one database (BENCH_FLEET_DB: a sqlite path by default; a postgres:// URL once
 * that backend lands), 1 nats-server with JetStream, 5 sidecars (h0..h4), each with a devbox
 * on one shared policy.
 *
 * 1. Propagation: BENCH_FLEET_UPDATES (1000) policy updates, alternating replicas; for each,
 *    the time from the replica's 200 to every sidecar enforcing it. "Enforcing" is read
 *    through each sidecar's POST /v1/egress/check, answered by the sidecar's own data-plane
 *    engine (the one its doors decide with), polled on keep-alive connections.
 * 2. Tighten → open tunnel cut: a CONNECT tunnel open through h0, the policy tightened; the
 *    time from the 200 to the tunnel's close (BENCH_FLEET_CUTS rounds).
 * 3. Full resync: BENCH_FLEET_POLICIES (1000) policies and BENCH_FLEET_DEVBOXES (10,000)
 *    devboxes on one host; a fresh sidecar for that host starts; its `fleet_resync` log line
 *    gives the read (both key ranges, whole) and the swap (one transaction), and the time from
 *    spawn to its last devbox enforced is shown beside it (3 rounds).
 * Prints one markdown table. Bounded: every wait has a deadline.
 */
import type net from 'node:net';
import { join } from 'node:path';
import os from 'node:os';
import { connectTunnel } from '../test/support/proxy.js';
import { openStore } from '../src/store/index.js';
import { type Node, ACCOUNT, createPolicy, decisionAt, fleetBase, registerDevbox, setHostnames, startReplica, startSidecar, until } from '../test/fleet/support.js';

const UPDATES = Number(process.env.BENCH_FLEET_UPDATES ?? 1000);
const CUTS = Number(process.env.BENCH_FLEET_CUTS ?? 20);
const POLICIES = Number(process.env.BENCH_FLEET_POLICIES ?? 1000);
const DEVBOXES = Number(process.env.BENCH_FLEET_DEVBOXES ?? 10_000);
const SIDECARS = 5;
const POLL_MS = Number(process.env.BENCH_FLEET_POLL_MS ?? 2);
const QUOTAS = ['--max-policies-per-account', '100000', '--max-devboxes-per-account', '100000', '--max-entries-per-account', '100000000'];

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;
};
const f1 = (n: number) => n.toFixed(1);

async function enforced(sidecars: Node[], devboxes: string[], host: string, want: 'allow' | 'deny', deadlineMs: number): Promise<void> {
  const end = Date.now() + deadlineMs;
  await Promise.all(
    sidecars.map(async (s, i) => {
      while ((await decisionAt(s.apiUrl, devboxes[i]!, host)) !== want) {
        if (Date.now() > end) throw new Error(`sidecar ${i} did not enforce ${want} ${host} within ${deadlineMs} ms`);
        // A short pause between polls: five tight loops would take the CPU the sidecars need.
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
    }),
  );
}

async function pool<T>(n: number, width: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await fn(i);
      }
    }),
  );
  return out;
}

/**
 * The resync's data: on a sqlite control plane written through the store in this process (the
 * replicas publish it from the outbox like any write; the API would take minutes on a shared
 * 2-core box); on any other database, through the API.
 */
async function load(db: string, replicas: Node[], policy: string): Promise<{ pids: string[]; big: Array<{ id: string }>; how: string }> {
  if (!db.includes('://')) {
    const store = openStore(db);
    try {
      const pids = [policy];
      for (let i = 0; i < POLICIES - 1; i++) pids.push(store.policies.create(ACCOUNT, { name: `p${i}`, egress: { allowed_hostnames: [`g${i % 8}.test`] } }).id);
      const big = [];
      for (let i = 0; i < DEVBOXES; i++) {
        big.push(store.devboxes.create(ACCOUNT, { hostId: 'big', networkPolicyId: pids[i % pids.length]! }).devbox);
      }
      return { pids, big, how: 'through the store' };
    } finally {
      store.close();
    }
  }
  const pids = [policy, ...(await pool(POLICIES - 1, 16, (i) => createPolicy(replicas[i % 2]!.apiUrl, `p${i}`, [`g${i % 8}.test`])))];
  const big = await pool(DEVBOXES, 16, (i) => registerDevbox(replicas[i % 2]!.apiUrl, 'big', pids[i % pids.length]!));
  return { pids, big, how: 'through the API' };
}

async function main(): Promise<void> {
  const base = await fleetBase();
  const db = process.env.BENCH_FLEET_DB ?? base.controlDb;
  const nodes: Node[] = [];
  try {
    const replicas = [await startReplica(db, base.nats.url, {}, QUOTAS), await startReplica(db, base.nats.url, {}, QUOTAS)];
    nodes.push(...replicas);
    const sidecars: Node[] = [];
    for (let i = 0; i < SIDECARS; i++) sidecars.push(await startSidecar(base.nats.url, `h${i}`, join(base.dir, `h${i}.db`), base.dns.port));
    nodes.push(...sidecars);
    const policy = await createPolicy(replicas[0]!.apiUrl, 'bench', ['g0.test']);
    const boxes = [];
    for (let i = 0; i < SIDECARS; i++) boxes.push(await registerDevbox(replicas[i % 2]!.apiUrl, `h${i}`, policy));
    const ids = boxes.map((b) => b.id);
    await enforced(sidecars, ids, 'g0.test', 'allow', 30_000);

    // 1. propagation
    const lags: number[] = [];
    for (let i = 1; i <= UPDATES; i++) {
      const host = `g${i % 2}.test`;
      await setHostnames(replicas[i % 2]!.apiUrl, policy, [host]);
      const acked = performance.now();
      await enforced(sidecars, ids, host, 'allow', 10_000);
      lags.push(performance.now() - acked);
    }

    // 2. tighten → open tunnel cut
    const cuts: number[] = [];
    const user = `${boxes[0]!.id}:${boxes[0]!.password}`;
    for (let i = 0; i < CUTS; i++) {
      await setHostnames(replicas[0]!.apiUrl, policy, ['allowed.test']);
      await enforced(sidecars.slice(0, 1), ids.slice(0, 1), 'allowed.test', 'allow', 10_000);
      const tunnel: net.Socket = await connectTunnel(sidecars[0]!.proxyPort, `allowed.test:${base.origin.port}`, { auth: user });
      tunnel.on('error', () => {});
      const closed = new Promise<number>((r) => tunnel.once('close', () => r(performance.now())));
      await setHostnames(replicas[1]!.apiUrl, policy, ['other.test']);
      const acked = performance.now();
      const at = await Promise.race([closed, new Promise<number>((_, j) => setTimeout(() => j(new Error('tunnel not cut within 10 s')), 10_000))]);
      cuts.push(at - acked);
    }

    // 3. full resync of POLICIES policies and DEVBOXES devboxes on one host
    const t0 = performance.now();
    const { pids, big, how } = await load(db, replicas, policy);
    const loadS = (performance.now() - t0) / 1000;
    // Published in order: once h0 sees a later update, the bucket holds everything before it.
    await setHostnames(replicas[0]!.apiUrl, policy, ['g7.test']);
    await enforced(sidecars.slice(0, 1), ids.slice(0, 1), 'g7.test', 'allow', 300_000);
    const last = big.at(-1)!.id;
    const lastHost = `g${(DEVBOXES - 1) % pids.length === 0 ? 7 : (((DEVBOXES - 1) % pids.length) - 1) % 8}.test`;
    const resyncs: Array<{ read: number; swap: number; total: number; spawnToEnforced: number; policies: number; devboxes: number }> = [];
    for (let round = 0; round < 3; round++) {
      const spawned = performance.now();
      const s = await startSidecar(base.nats.url, 'big', join(base.dir, `big-${round}.db`), base.dns.port, ['--log-level', 'info']);
      await until(async () => (await decisionAt(s.apiUrl, last, lastHost)) === 'allow', 120_000, 'the big sidecar to resync');
      const spawnToEnforced = performance.now() - spawned;
      const line = s
        .out()
        .split('\n')
        .find((l) => l.includes('"event":"fleet_resync"'));
      const ev = JSON.parse(line!) as { read_ms: number; swap_ms: number; ms: number; policies: number; devboxes: number };
      resyncs.push({ read: ev.read_ms, swap: ev.swap_ms, total: ev.ms, spawnToEnforced, policies: ev.policies, devboxes: ev.devboxes });
      await s.stop();
    }

    const cpu = os.cpus()[0]?.model ?? 'unknown cpu';
    console.log(`\n### Fleet propagation (${os.cpus().length} cores, ${cpu}, Node ${process.version}; 2 replicas on ${db.startsWith('postgres') ? 'PostgreSQL' : 'one sqlite file'}, 1 nats-server, ${SIDECARS} sidecars; machine shared)\n`);
    console.log('| measure | n | p50 ms | p99 ms | max ms |');
    console.log('|---|---:|---:|---:|---:|');
    console.log(`| update acknowledged → enforced by all ${SIDECARS} sidecars | ${lags.length} | ${f1(pct(lags, 50))} | ${f1(pct(lags, 99))} | ${f1(Math.max(...lags))} |`);
    console.log(`| tighten acknowledged → open tunnel cut (h0) | ${cuts.length} | ${f1(pct(cuts, 50))} | ${f1(pct(cuts, 99))} | ${f1(Math.max(...cuts))} |`);
    console.log(`\nFull resync of one host (${resyncs[0]!.policies} policies, ${resyncs[0]!.devboxes} devboxes; loaded ${how} in ${loadS.toFixed(1)} s):\n`);
    console.log('| round | read ms | swap ms | resync ms (read + swap) | spawn → last devbox enforced ms |');
    console.log('|---:|---:|---:|---:|---:|');
    for (const [i, r] of resyncs.entries()) console.log(`| ${i + 1} | ${r.read} | ${r.swap} | ${r.total} | ${Math.round(r.spawnToEnforced)} |`);
  } finally {
    await base.close(nodes);
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
