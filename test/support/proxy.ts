/**
 * Shared pieces of the proxy-door tests: a gateway (HTTP proxy + transparent doors) with a
 * test DNS upstream and HTTP/HTTPS origins on 127.0.0.1, two devboxes with different
 * policies, an async curl (the gateway runs in this process: never block the loop),
 * raw-socket exchanges and metric reads.
 */
import net from 'node:net';
import { execFile } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startDnsUpstream, loopbackRecords, type DnsUpstream } from './dns-upstream.js';
import { startHttpOrigin, startHttpsOrigin, testCert, type Origin } from './origin.js';
import { startTestGateway, type TestGateway } from './gateway.js';
export { rawExchange, type RawResult } from './raw-socket.js';

export const NAMES = ['allowed.test', 'www.allowed.test', 'other.test', 'denied.test', 'ws.test', 'second.test'];

export interface ProxyEnv {
  gw: TestGateway;
  dns: DnsUpstream;
  http: Origin;
  https: Origin;
  proxyPort: number;
  proxyUrl: string;
  certPath: string;
  /** Devbox A on 127.0.0.2: allowed.test, *.allowed.test, ws.test. */
  a: { id: string; username: string; password: string; policy: string };
  /** Devbox B on 127.0.0.3: other.test only. */
  b: { id: string; username: string; password: string; policy: string };
  close(): Promise<void>;
}

export async function startProxyEnv(flags: Record<string, string | string[]> = {}): Promise<ProxyEnv> {
  const dns = await startDnsUpstream({ records: loopbackRecords(NAMES) });
  const http = await startHttpOrigin();
  const https = await startHttpsOrigin();
  const gw = await startTestGateway({ upstreamDnsPort: dns.port, flags });
  const pa = await gw.api.policy('policy-a', { allowed_hostnames: ['allowed.test', '*.allowed.test', 'ws.test'] });
  const pb = await gw.api.policy('policy-b', { allowed_hostnames: ['other.test'] });
  const a = { ...(await gw.api.devbox(pa, ['127.0.0.2'], 'box-a')), policy: pa };
  const b = { ...(await gw.api.devbox(pb, ['127.0.0.3'], 'box-b')), policy: pb };
  const proxyPort = gw.addr('http-proxy').port;
  return {
    gw,
    dns,
    http,
    https,
    proxyPort,
    a,
    b,
    proxyUrl: `http://127.0.0.1:${proxyPort}`,
    certPath: testCert().certPath,
    close: async () => {
      await gw.close();
      await http.close();
      await https.close();
      await dns.close();
    },
  };
}

export interface CurlResult {
  /** curl's exit code. */
  exit: number;
  /** %{http_code} (for CONNECT failures: the proxy's answer, via %{http_connect}). */
  status: number;
  connectStatus: number;
  headers: string;
  body: Buffer;
  stderr: string;
}

/**
 * Runs curl asynchronously (`-s -S`, headers of every response into `headers`, bodies on
 * stdout). Extra `-w` text goes after the bodies; status/connectStatus are the last response's.
 */
export function curl(args: string[], timeoutMs = 15_000): Promise<CurlResult> {
  const dir = tempDir('curl');
  const headerFile = join(dir, 'h');
  const w = args.indexOf('-w');
  let extraW = '';
  if (w >= 0) {
    extraW = args[w + 1] ?? '';
    args = [...args.slice(0, w), ...args.slice(w + 2)];
  }
  return new Promise((resolve) => {
    const marker = '\n@@CURL@@';
    execFile(
      'curl',
      ['-s', '-S', '-D', headerFile, '-o', '-', '-w', `${extraW}${marker}%{http_code} %{http_connect}`, '--max-time', String(Math.ceil(timeoutMs / 1000)), ...args],
      { encoding: 'buffer', maxBuffer: 256 * 1024 * 1024, timeout: timeoutMs + 2000 },
      (err, stdout, stderr) => {
        const out = stdout as Buffer;
        const at = out.lastIndexOf(marker);
        const tail = at >= 0 ? out.subarray(at + marker.length).toString() : '0 0';
        const [code, conn] = tail.split(' ').map(Number);
        let headers = '';
        try {
          headers = readFileSync(headerFile, 'latin1');
        } catch {
          /* no response */
        }
        rmSync(dir, { recursive: true, force: true });
        resolve({
          exit: err ? ((err as { code?: number }).code ?? 1) : 0,
          status: code ?? 0,
          connectStatus: conn ?? 0,
          headers,
          body: at >= 0 ? out.subarray(0, at) : out,
          stderr: (stderr as Buffer).toString('latin1'),
        });
      },
    );
  });
}

/** Opens a CONNECT tunnel; resolves with the socket once 200 arrived (rejects with the status line otherwise). */
export function connectTunnel(proxyPort: number, target: string, opts: { localAddress?: string; auth?: string } = {}): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port: proxyPort, localAddress: opts.localAddress });
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      sock.off('data', onData);
      const head = buf.subarray(0, end).toString('latin1');
      if (!/^HTTP\/1\.1 200/.test(head)) {
        sock.destroy();
        reject(new Error(head.split('\r\n')[0]));
        return;
      }
      const rest = buf.subarray(end + 4);
      // Keep bytes that came with the 200 for whoever reads the tunnel next.
      sock.pause();
      if (rest.length > 0) sock.unshift(rest);
      setImmediate(() => sock.resume());
      resolve(sock);
    };
    sock.on('data', onData);
    sock.on('error', reject);
    sock.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${opts.auth ? `Proxy-Authorization: Basic ${Buffer.from(opts.auth).toString('base64')}\r\n` : ''}\r\n`);
  });
}

/** The response's status code and a header from raw bytes. */
export function statusOf(raw: Buffer | string): number {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(typeof raw === 'string' ? raw : raw.toString('latin1'));
  return m ? Number(m[1]) : 0;
}

export function headerOf(raw: Buffer | string, name: string): string | undefined {
  const text = typeof raw === 'string' ? raw : raw.toString('latin1');
  const m = new RegExp(`^${name}:\\s*(.*?)\\r?$`, 'im').exec(text);
  return m?.[1];
}

/** Reads one sample from /metrics: the sum of series of `name` whose labels include `labels`. */
export async function metric(env: { gw: TestGateway }, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${env.gw.apiUrl}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have: Record<string, string> = {};
    for (const kv of (m[3] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) have[kv[1]!] = kv[2]!;
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[4]);
  }
  return sum;
}

import { sleep } from './wait.js';
import { tempDir } from './temp.js';

export { sleep };

/** Polls until `fn` is true or `ms` pass. */
export async function until(fn: () => boolean | Promise<boolean>, ms = 2000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return true;
    await sleep(20);
  }
  return fn();
}

/** The pattern /bytes/N of the test origin serves. */
export function originPattern(n: number): Buffer {
  const chunk = Buffer.alloc(Math.min(n, 65536), 'abcdefghijklmnopqrstuvwxyz0123456789');
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i += chunk.length) chunk.copy(out, i, 0, Math.min(chunk.length, n - i));
  return out;
}
