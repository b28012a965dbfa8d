/**
 * The real CLI with `--workers 2` on loopback, a DNS upstream that knows the test names,
 * and an HTTP origin on 127.0.0.1; what a worker test reads from the gateway's log.
 */
import net from 'node:net';
import { type CliGateway, type CliGatewayOptions, logLines, startCliGateway } from '../support/cli-gateway.js';
import { type DnsUpstream, type TestRecord, startDnsUpstream } from '../support/dns-upstream.js';
import { type Origin, startHttpOrigin } from '../support/origin.js';

export interface TwoWorkers {
  gw: CliGateway;
  upstream: DnsUpstream;
  origin: Origin;
  close(): Promise<void>;
}

export async function startTwoWorkers(records: Record<string, TestRecord[]>, opts: CliGatewayOptions = {}): Promise<TwoWorkers> {
  const upstream = await startDnsUpstream({ records: { 'origin.test': [{ type: 'A', data: '127.0.0.1', ttl: 60 }], ...records } });
  const origin = await startHttpOrigin();
  // Node's round-robin hand-off (not the gateway's default): consecutive connections then
  // alternate between the workers, so a test knows both took some.
  const gw = await startCliGateway({ startTimeoutMs: 220_000, ...opts, env: { NODE_CLUSTER_SCHED_POLICY: 'rr', ...opts.env }, upstreamDnsPort: upstream.port, args: ['--workers', '2', ...(opts.args ?? [])] });
  return {
    gw,
    upstream,
    origin,
    async close() {
      if (gw.child.exitCode === null) await gw.stop();
      await origin.close();
      await upstream.close();
    },
  };
}

/** Worker processes by slot, from the primary's "worker_started" lines (the latest per slot). */
export function workerPids(out: string): Map<number, number> {
  const pids = new Map<number, number>();
  for (const l of logLines(out)) if (l.event === 'worker_started') pids.set(l.slot as number, l.pid as number);
  return pids;
}

/** Pids of the workers that have reported listening (the primary's "worker_listening" lines). */
export function listeningPids(out: string): Set<number> {
  const pids = new Set<number>();
  for (const l of logLines(out)) if (l.event === 'worker_listening') pids.add(l.pid as number);
  return pids;
}

/** The worker slots whose log lines match (each worker's lines carry `worker` and `pid`). */
export function workersLogging(out: string, match: (line: Record<string, unknown>) => boolean): Set<number> {
  const seen = new Set<number>();
  for (const l of logLines(out)) if (typeof l.worker === 'number' && match(l)) seen.add(l.worker);
  return seen;
}

/** A CONNECT tunnel held open by the devbox at `source`; `status` is the proxy's answer. */
export interface HeldTunnel {
  status: number;
  socket: net.Socket;
  closed: Promise<void>;
}

export function holdConnect(proxyPort: number, authority: string, source: string): Promise<HeldTunnel> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port: proxyPort, localAddress: source });
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    let buf = '';
    socket.on('error', () => {});
    socket.once('connect', () => socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`));
    const onData = (d: Buffer) => {
      buf += d.toString('latin1');
      if (!buf.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      resolve({ status: Number(buf.slice(9, 12)), socket, closed });
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error(`closed before an answer to CONNECT ${authority}: ${JSON.stringify(buf)}`)));
  });
}
