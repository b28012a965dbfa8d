/**
 * Shared pieces of the SOCKS5 door tests: a gateway with a test DNS upstream and an HTTP
 * origin, raw-socket and `socks`-package clients, curl, and metric reads.
 */
import type net from 'node:net';
import { execFile } from 'node:child_process';
import { SocksClient, type SocksClientOptions } from 'socks';
import { startDnsUpstream, loopbackRecords, type DnsUpstream } from './dns-upstream.js';
import { startHttpOrigin, type Origin } from './origin.js';
import { startTestGateway, type TestGateway } from './gateway.js';
export { rawExchange, type RawResult } from './raw-socket.js';

export interface SocksEnv {
  gw: TestGateway;
  dns: DnsUpstream;
  origin: Origin;
  socksPort: number;
  close(): Promise<void>;
}

export const TEST_NAMES = ['allowed.test', 'www.allowed.test', 'other.test', 'denied.test'];

export async function startSocksEnv(flags: Record<string, string | string[]> = {}): Promise<SocksEnv> {
  const dns = await startDnsUpstream({ records: loopbackRecords(TEST_NAMES) });
  const origin = await startHttpOrigin();
  const gw = await startTestGateway({ upstreamDnsPort: dns.port, flags });
  return {
    gw,
    dns,
    origin,
    socksPort: gw.addr('socks5').port,
    close: async () => {
      await gw.close();
      await origin.close();
      await dns.close();
    },
  };
}

/** A SOCKS5 CONNECT through the `socks` package; resolves to the established socket. */
export async function socksConnect(port: number, dest: { host: string; port: number }, opts: { userId?: string; password?: string; localAddress?: string; timeoutMs?: number } = {}): Promise<net.Socket> {
  const options: SocksClientOptions = {
    proxy: { host: '127.0.0.1', port, type: 5 },
    command: 'connect',
    destination: dest,
    timeout: opts.timeoutMs ?? 5000,
  };
  if (opts.userId !== undefined) Object.assign(options.proxy, { userId: opts.userId, password: opts.password ?? '' });
  if (opts.localAddress) options.socket_options = { host: '127.0.0.1', port, localAddress: opts.localAddress };
  const { socket } = await SocksClient.createConnection(options);
  return socket as net.Socket;
}

/** Sends a GET with Connection: close on an established tunnel and returns status and body. */
export function httpGet(sock: net.Socket, host: string, path: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const got: Buffer[] = [];
    sock.on('data', (d) => got.push(d));
    sock.on('error', reject);
    sock.on('close', () => {
      const all = Buffer.concat(got);
      const sep = all.indexOf('\r\n\r\n');
      if (sep < 0) return reject(new Error(`no HTTP response: ${all.toString('latin1').slice(0, 200)}`));
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(all.subarray(0, sep).toString('latin1'))?.[1] ?? 0);
      resolve({ status, body: all.subarray(sep + 4) });
    });
    sock.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  });
}

export interface CurlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function curl(args: string[], timeoutMs = 10_000): Promise<CurlResult> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', String(Math.ceil(timeoutMs / 1000)), ...args], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Reads one sample from /metrics; 0 when absent. Labels must match exactly (order-insensitive). */
export async function metric(gw: TestGateway, name: string, labels: Record<string, string>): Promise<number> {
  const res = await fetch(`${gw.apiUrl}/metrics`);
  const text = await res.text();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^[^{\s]+(?:\{([^}]*)\})?\s+(\S+)$/.exec(line);
    if (!m) continue;
    const got: Record<string, string> = {};
    for (const pair of (m[1] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) got[pair[1]!] = pair[2]!;
    const want = Object.entries(labels);
    if (want.length === Object.keys(got).length && want.every(([k, v]) => got[k] === v)) return Number(m[2]);
  }
  return 0;
}

export const denyMetric = (reason: string) => ({ door: 'socks5', decision: 'deny', reason });

/** The full 10-byte reply for a code with a 0.0.0.0:0 bound address. */
export const failReplyBytes = (code: number) => Buffer.from([5, code, 0, 1, 0, 0, 0, 0, 0, 0]);
