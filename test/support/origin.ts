/**
 * Origin servers for tests on 127.0.0.1: plain HTTP and HTTPS (self-signed, made once per
 * test file with openssl) that echo what they received, so a test can check a body arrived intact.
 */
import http from 'node:http';
import https from 'node:https';
import { execFileSync } from 'node:child_process';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './temp.js';
import type { AddressInfo } from 'node:net';

export interface Cert {
  key: string;
  cert: string;
  certPath: string;
  keyPath: string;
}

let cached: Cert | null = null;

/** A self-signed certificate for the names tests use (*.test and localhost). */
export function testCert(): Cert {
  if (cached) return cached;
  const dir = tempDir('cert');
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  if (!existsSync(certPath)) {
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', '/CN=egress-test', '-addext', 'subjectAltName=DNS:localhost,DNS:*.test,DNS:allowed.test,DNS:denied.test,DNS:*.allowed.test,DNS:*.example.test,IP:127.0.0.1'],
      { stdio: 'ignore' },
    );
  }
  cached = { key: readFileSync(keyPath, 'utf8'), cert: readFileSync(certPath, 'utf8'), certPath, keyPath };
  return cached;
}

export interface Origin {
  port: number;
  url: string;
  /** Requests seen: method, url, host header. */
  seen: Array<{ method: string; url: string; host: string | undefined }>;
  close(): Promise<void>;
}

/** Echo handler: GET /bytes/N returns N bytes of a pattern; anything else returns a JSON echo. */
function handler(seen: Origin['seen']): http.RequestListener {
  return (req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', host: req.headers.host });
    const m = /^\/bytes\/(\d+)$/.exec(req.url ?? '');
    if (m) {
      const n = Number(m[1]);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n });
      const chunk = Buffer.alloc(Math.min(n, 65536), 'abcdefghijklmnopqrstuvwxyz0123456789');
      let left = n;
      const pump = () => {
        while (left > 0) {
          const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
          left -= piece.length;
          if (!res.write(piece)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
      return;
    }
    const body: Buffer[] = [];
    req.on('data', (d: Buffer) => body.push(d));
    req.on('end', () => {
      const text = JSON.stringify({ method: req.method, url: req.url, host: req.headers.host, headers: req.headers, body: Buffer.concat(body).toString('utf8') });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
  };
}

async function listen(server: http.Server | https.Server, scheme: string): Promise<Origin & { server: http.Server }> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const seen = (server as unknown as { seen: Origin['seen'] }).seen;
  return {
    port,
    seen,
    server,
    url: `${scheme}://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections?.();
        server.close(() => r());
      }),
  };
}

export async function startHttpOrigin(): Promise<Origin & { server: http.Server }> {
  const seen: Origin['seen'] = [];
  const server = http.createServer(handler(seen));
  Object.assign(server, { seen });
  return listen(server, 'http');
}

export async function startHttpsOrigin(): Promise<Origin & { server: http.Server }> {
  const seen: Origin['seen'] = [];
  const { key, cert } = testCert();
  const server = https.createServer({ key, cert }, handler(seen));
  Object.assign(server, { seen });
  return listen(server as unknown as http.Server, 'https');
}
