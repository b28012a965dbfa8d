/**
 * `npx tsx bench/tunnel-memory.ts` (part of `npm run bench`): the gateway's resident memory
 * with 1,000 devboxes and thousands of open, idle CONNECT tunnels.
 *
 * Three processes (this file in three roles): the origin (accepts and holds connections),
 * the gateway (as in the tests; 1,000 devboxes on 127.2.x.y, one policy), and this load
 * generator, which opens TUNNELS_PER_DEVBOX tunnels from each devbox's own source address:
 * CONNECT, the 200, one non-TLS byte (so each tunnel is an opaque relay, both directions
 * spliced), then nothing. RSS (VmRSS of the data-plane process, and of the API process
 * beside it) is read from /proc once the devboxes exist, at half the tunnels and at all of
 * them; the slope between the last two gives the cost per tunnel and the projection to
 * 10,000. Each tunnel costs the gateway two descriptors, so the count is bounded by the
 * open-file limit (fair share per devbox included; see docs/benchmarks.md). Loopback only,
 * bounded: the whole run stops after MAX_SECONDS.
 */
import net from 'node:net';
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const DEVBOXES = Number(process.env.BENCH_MEM_DEVBOXES ?? 1000);
const TUNNELS_PER_DEVBOX = Number(process.env.BENCH_MEM_TUNNELS_PER_DEVBOX ?? 9);
const OPEN_AT_ONCE = 200;
const MAX_SECONDS = 600;
const role = process.argv.find((a) => a.startsWith('--role='))?.slice(7) ?? 'main';

/** The source address of devbox i (127.2.0.1 … : its own address, so the gateway identifies it). */
function devboxAddress(i: number): string {
  return `127.2.${Math.floor(i / 250)}.${1 + (i % 250)}`;
}

async function runOrigin(): Promise<void> {
  const held = new Set<net.Socket>();
  const server = net.createServer((s) => {
    held.add(s);
    s.on('data', () => {}); // read and drop
    s.on('error', () => {});
    s.on('close', () => held.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  process.send!({ port: (server.address() as net.AddressInfo).port });
}

async function runGateway(): Promise<void> {
  process.env.EGRESS_TEST_LOG = 'info';
  const { startDnsUpstream, loopbackRecords } = await import('../test/support/dns-upstream.js');
  const { startTestGateway } = await import('../test/support/gateway.js');
  const dns = await startDnsUpstream({ records: loopbackRecords(['allowed.test']), negativeSoa: { ttl: 300, minimum: 300 } });
  const gw = await startTestGateway({
    upstreamDnsPort: dns.port,
    // Every descriptor for tunnels: few pooled keep-alives and DNS TCP connections.
    flags: { 'upstream-pool-max': '8', 'dns-tcp-max': '8', 'max-devboxes-per-account': String(DEVBOXES + 10), 'allow-private': '127.0.0.0/8' },
  });
  const p = await gw.api.policy('bench-memory', { allowed_hostnames: ['allowed.test'] });
  for (let i = 0; i < DEVBOXES; i++) await gw.api.devbox(p, [devboxAddress(i)], `box-${i}`);
  process.send!({ proxy: gw.gw.doors['http-proxy']!.port });
  process.on('message', async (m) => {
    if (m === 'stop') {
      await gw.close();
      await dns.close();
      process.exit(0);
    }
  });
}

/** VmRSS of a process, in MB (null when it cannot be read). */
function rssMb(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** The processes started by `pid` (the API process beside the data plane). */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function startChild(r: string): Promise<{ child: ChildProcess; info: any }> {
  const child = fork(fileURLToPath(import.meta.url), [`--role=${r}`], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('message', (info) => resolve({ child, info }));
    child.once('exit', (code) => reject(new Error(`${r} exited ${code}`)));
  });
}

/** One idle tunnel from `from`: CONNECT, the 200, one byte; resolves with the open socket (null on failure). */
function openTunnel(proxy: number, from: string, originPort: number): Promise<net.Socket | null> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port: proxy, localAddress: from });
    let buf = '';
    const fail = () => {
      s.destroy();
      resolve(null);
    };
    s.on('error', fail);
    s.on('connect', () => s.write(`CONNECT allowed.test:${originPort} HTTP/1.1\r\nHost: allowed.test:${originPort}\r\n\r\n`));
    const onData = (d: Buffer) => {
      buf += d.toString('latin1');
      if (!buf.includes('\r\n\r\n')) return;
      s.off('data', onData);
      if (!buf.startsWith('HTTP/1.1 200')) return fail();
      s.write('x'); // not TLS: an opaque tunnel, spliced both ways
      resolve(s);
    };
    s.on('data', onData);
  });
}

async function main(): Promise<void> {
  const stopAll = setTimeout(() => {
    process.stderr.write(`tunnel-memory: stopped after ${MAX_SECONDS} s\n`);
    process.exit(1);
  }, MAX_SECONDS * 1000);
  const origin = await startChild('origin');
  const gwp = await startChild('gateway');
  const gwPid = gwp.child.pid!;
  const apiPid = childrenOf(gwPid)[0] ?? null;
  const proxy = gwp.info.proxy as number;
  const originPort = origin.info.port as number;
  const sample = (tunnels: number) => ({ tunnels, plane: rssMb(gwPid), api: apiPid === null ? null : rssMb(apiPid) });
  await new Promise((r) => setTimeout(r, 1000));
  const samples = [sample(0)];
  const open: net.Socket[] = [];
  let failed = 0;
  const total = DEVBOXES * TUNNELS_PER_DEVBOX;
  const order = Array.from({ length: total }, (_, k) => devboxAddress(k % DEVBOXES));
  for (let k = 0; k < total; k += OPEN_AT_ONCE) {
    const got = await Promise.all(order.slice(k, k + OPEN_AT_ONCE).map((from) => openTunnel(proxy, from, originPort)));
    for (const s of got) {
      if (s === null) failed++;
      else open.push(s);
    }
    if (k + OPEN_AT_ONCE >= total / 2 && samples.length === 1) {
      await new Promise((r) => setTimeout(r, 1000));
      samples.push(sample(open.length));
    }
  }
  await new Promise((r) => setTimeout(r, 2000));
  samples.push(sample(open.length));
  for (const s of open) s.destroy();
  gwp.child.send('stop');
  origin.child.kill();
  await new Promise((r) => gwp.child.once('exit', r));
  clearTimeout(stopAll);

  const f = (n: number | null) => (n === null ? '–' : n.toFixed(1));
  const [, half, full] = samples as [ReturnType<typeof sample>, ReturnType<typeof sample>, ReturnType<typeof sample>];
  const perTunnelKb = half.plane !== null && full.plane !== null && full.tunnels > half.tunnels ? ((full.plane - half.plane) * 1024) / (full.tunnels - half.tunnels) : null;
  const projected = perTunnelKb === null || full.plane === null ? null : full.plane + ((10_000 - full.tunnels) * perTunnelKb) / 1024;
  const lines = [
    `### Gateway memory: ${DEVBOXES.toLocaleString('en')} devboxes, open idle CONNECT tunnels (each from its devbox's own address, spliced both ways)`,
    '',
    '| open tunnels | data plane RSS MB | API process RSS MB | both MB |',
    '|---:|---:|---:|---:|',
    ...samples.map((s) => `| ${s.tunnels.toLocaleString('en')} | ${f(s.plane)} | ${f(s.api)} | ${s.plane === null || s.api === null ? '–' : (s.plane + s.api).toFixed(1)} |`),
    '',
    '| data plane per tunnel (slope of the last two rows) | projected data plane RSS at 10,000 tunnels | tunnels refused |',
    '|---:|---:|---:|',
    `| ${perTunnelKb === null ? '–' : `${perTunnelKb.toFixed(1)} KB`} | ${f(projected)} MB | ${failed} |`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

if (role === 'origin') await runOrigin();
else if (role === 'gateway') await runGateway();
else await main();
