/**
 * One port, both protocols: HTTP/2 with prior knowledge (the SDK's default), HTTP/1.1
 * (curl, fetch), and with TLS, h2 and http/1.1 by ALPN. Shutdown does not wait on the
 * SDK's open session; a busy port is a start-up error naming --api.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import Runloop from '@runloop/api-client';
import { ConfigError } from '../../src/config.js';
import { call, startTestApi, tempDir, TOKEN_A, type TestApi } from '../support/api.js';

function curl(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '-w', '\n%{http_code} %{http_version}', ...args], { encoding: 'utf8' }, (err, stdout) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout });
    });
  });
}

function h2Get(origin: string, path: string, opts: http2.SecureClientSessionOptions = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(origin, opts);
    session.on('error', reject);
    const req = session.request({ ':path': path, authorization: `Bearer ${TOKEN_A}` });
    let body = '';
    let status = 0;
    req.on('response', (h) => (status = Number(h[':status'])));
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => {
      session.close();
      resolve({ status, body });
    });
    req.on('error', reject);
    req.end();
  });
}

function h1Get(url: string, agentOpts: https.RequestOptions = {}): Promise<{ status: number; version: string; body: string }> {
  const mod = url.startsWith('https:') ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(url, { headers: { authorization: `Bearer ${TOKEN_A}` }, agent: false, ...agentOpts }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, version: res.httpVersion, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('cleartext: h2c and HTTP/1.1 on one port', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi();
  });
  afterAll(async () => {
    await api.close();
  });

  it('serves HTTP/2 with prior knowledge', async () => {
    const r = await h2Get(api.base, '/v1/network-policies');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ network_policies: [], has_more: false });
  });

  it('the SDK with default options talks HTTP/2', async () => {
    const spy = vi.spyOn(http2, 'connect');
    try {
      const sdk = new Runloop({ bearerToken: TOKEN_A, baseURL: api.base });
      const p = await sdk.networkPolicies.create({ name: 'over-h2' });
      await sdk.networkPolicies.delete(p.id);
      expect(spy).toHaveBeenCalled();
      expect(String(spy.mock.calls[0]![0])).toContain(`127.0.0.1:${api.port}`);
    } finally {
      spy.mockRestore();
    }
  });

  it('serves HTTP/1.1 to curl and node:http on the same port', async () => {
    const r = await curl(['--http1.1', '-H', `Authorization: Bearer ${TOKEN_A}`, '-H', 'Content-Type: application/json', '-d', '{"name":"from-curl","allowed_hostnames":["Example.COM"]}', `${api.base}/v1/network-policies`]);
    expect(r.code).toBe(0);
    const [body, status] = r.out.split('\n') as [string, string];
    expect(status).toBe('200 1.1');
    expect(JSON.parse(body).egress.allowed_hostnames).toEqual(['example.com']);

    const bad = await curl(['--http1.1', `${api.base}/v1/network-policies`]);
    expect(bad.out.split('\n')[1]).toBe('401 1.1');
    expect(JSON.parse(bad.out.split('\n')[0]!).error).toMatchObject({ code: 'unauthorized', status: 401 });

    const h1 = await h1Get(`${api.base}/v1/network-policies?name=from-curl`);
    expect(h1.version).toBe('1.1');
    expect(JSON.parse(h1.body).network_policies[0].name).toBe('from-curl');
  });

  it('curl with HTTP/2 prior knowledge works too', async () => {
    const r = await curl(['--http2-prior-knowledge', '-H', `Authorization: Bearer ${TOKEN_A}`, `${api.base}/v1/network-policies?limit=1`]);
    expect(r.out.split('\n')[1]).toBe('200 2');
  });

  it('an oversized upload with Expect: 100-continue is refused with 413 before the body is sent', async () => {
    const file = join(api.dir, 'big.json');
    writeFileSync(file, JSON.stringify({ name: 'big', description: 'x'.repeat(1_200_000) }));
    const r = await curl(['--http1.1', '-H', `Authorization: Bearer ${TOKEN_A}`, '-H', 'Content-Type: application/json', '--data-binary', `@${file}`, `${api.base}/v1/network-policies`]);
    const [body, status] = r.out.split('\n') as [string, string];
    expect(status).toBe('413 1.1');
    expect(JSON.parse(body).error).toMatchObject({ code: 'payload_too_large', status: 413 });
  });

  it('keeps HTTP/1.1 connections alive across requests', async () => {
    const r = await curl(['--http1.1', '-v', `${api.base}/healthz`, `${api.base}/healthz`]);
    expect(r.out).toContain('{"status":"ok"}');
  });

  it('serves /openapi.json generated from the route schemas, and /metrics with API counters', async () => {
    const doc = (await call(api, 'GET', '/openapi.json', { token: null })).body;
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/v1/network-policies', '/v1/network-policies/{id}', '/v1/network-policies/{id}/delete', '/v1/devboxes', '/v1/devboxes/{id}', '/v1/devboxes/{id}/shutdown', '/v1/egress/check', '/healthz', '/metrics']));
    const create = doc.paths['/v1/network-policies'].post;
    expect(create.operationId).toBe('createNetworkPolicy');
    const body = create.requestBody.content['application/json'].schema;
    expect(body.additionalProperties).toBe(false);
    expect(Object.keys(body.properties)).toEqual(expect.arrayContaining(['name', 'allowed_hostnames', 'allowed_cidrs', 'allow_runloop_mirrors']));
    const view = create.responses['200'].content['application/json'].schema;
    expect(Object.keys(view.properties.egress.properties)).toEqual(expect.arrayContaining(['allowed_cidrs', 'allow_runloop_mirrors']));

    const metrics = (await call(api, 'GET', '/metrics', { token: null })).text;
    expect(metrics).toMatch(/egress_api_requests_total\{route="\/v1\/network-policies",method="POST",status="200"\} \d+/);
    expect(metrics).toMatch(/egress_api_request_duration_seconds_bucket\{le="[\d.]+",route="\/v1\/network-policies"/);
    expect(metrics).toContain('egress_process_cpu_seconds_total');
  });
});

describe('shutdown and start-up errors', () => {
  it('closes promptly while the SDK holds its HTTP/2 session open', async () => {
    const api = await startTestApi();
    const sdk = new Runloop({ bearerToken: TOKEN_A, baseURL: api.base });
    await sdk.networkPolicies.list();
    const t0 = Date.now();
    await api.close();
    expect(Date.now() - t0).toBeLessThan(900); // under the 1 s grace: idle sessions are closed, not waited for
  });

  it('a busy port is a ConfigError naming --api', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      await expect(startTestApi({ extraFlags: [['api', [`127.0.0.1:${port}`]]] })).rejects.toSatisfy((e: unknown) => e instanceof ConfigError && e.setting === '--api' && /in use/.test(e.message));
    } finally {
      blocker.close();
    }
  });
});

describe('TLS: h2 and http/1.1 by ALPN', () => {
  let api: TestApi;
  beforeAll(async () => {
    const dir = tempDir();
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    await new Promise<void>((resolve, reject) =>
      execFile('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], (err) => (err ? reject(err) : resolve())),
    );
    api = await startTestApi({
      dir,
      extraFlags: [
        ['api-tls-cert', [cert]],
        ['api-tls-key', [key]],
      ],
    });
  });
  afterAll(async () => {
    await api?.close();
  });

  it('speaks h2 to an ALPN h2 client', async () => {
    const r = await h2Get(`https://127.0.0.1:${api.port}`, '/v1/network-policies', { rejectUnauthorized: false });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).has_more).toBe(false);
  });

  it('speaks HTTP/1.1 to an http/1.1 client (node https and curl)', async () => {
    const r = await h1Get(`https://127.0.0.1:${api.port}/v1/network-policies`, { rejectUnauthorized: false });
    expect(r.status).toBe(200);
    expect(r.version).toBe('1.1');
    const c = await curl(['-k', '--http1.1', `https://127.0.0.1:${api.port}/healthz`]);
    expect(c.out).toBe('{"status":"ok"}\n200 1.1');
    const c2 = await curl(['-k', '--http2', `https://127.0.0.1:${api.port}/healthz`]);
    expect(c2.out).toBe('{"status":"ok"}\n200 2');
  });

  it('plain HTTP to the TLS port does not get an answer', async () => {
    await expect(fetch(`http://127.0.0.1:${api.port}/healthz`)).rejects.toThrow();
  });
});
