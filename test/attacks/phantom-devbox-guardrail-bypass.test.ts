/**
 * Attack: an API client (any account token, not the operator) registers a "devbox" whose
 * address is a destination the guardrails protect — cloud metadata, link-local, loopback
 * of the host — and then reaches it from a real devbox of the same account whose policy
 * has allow_devbox_to_devbox (which allow_all forces on). decideIp() admits an account
 * devbox address as `devbox_to_devbox` *before* the guardrail check, so the metadata
 * service (or the gateway host's own loopback services) becomes reachable.
 *
 * Expected: the guardrail wins (DESIGN: "Guardrails, before any allow"): either the API
 * refuses to register such an address, or every door still denies it as private_address.
 *
 * Set-up: the gateway exempts only 127.0.0.0/24 from the guardrail (the devboxes live
 * there); a "host-internal" service listens on 127.1.0.1, which the guardrail protects.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { rawExchange } from '../support/raw-socket.js';

const statusOf = (b: Buffer) => Number(/^HTTP\/1\.[01] (\d{3})/.exec(b.toString('latin1'))?.[1] ?? 0);
const reasonOf = (b: Buffer) => /^X-Egress-Denied-Reason:\s*(\S+)/im.exec(b.toString('latin1'))?.[1];

let gw: TestGateway;
let secret: net.Server;
let secretPort: number;
let allowAllBox: string;
let d2dBox: string;
const SECRET_IP = '127.1.0.1';

beforeAll(async () => {
  secret = net.createServer((s) => s.end('TOP-SECRET host-internal service\n'));
  await new Promise<void>((r) => secret.listen(0, SECRET_IP, r));
  secretPort = (secret.address() as net.AddressInfo).port;
  gw = await startTestGateway({ flags: { 'allow-private': '127.0.0.0/24', 'connect-timeout-ms': '500' } });
  const all = await gw.api.policy('everything', { allow_all: true });
  const d2d = await gw.api.policy('d2d-only', { allow_devbox_to_devbox: true, allowed_hostnames: ['example.com'] });
  allowAllBox = (await gw.api.devbox(all, ['127.0.0.2'], 'agent-all')).id;
  d2dBox = (await gw.api.devbox(d2d, ['127.0.0.3'], 'agent-d2d')).id;
});
afterAll(async () => {
  await gw?.close();
  secret?.close();
});

async function check(devboxId: string, host: string, port: number): Promise<{ decision: string; reason: string }> {
  const r = await gw.api.call('POST', '/v1/egress/check', { devbox_id: devboxId, host, port });
  expect(r.status).toBe(200);
  return r.body;
}

describe('phantom devbox address: guardrail bypass through devbox_to_devbox', () => {
  it('baseline: the host-internal address and the metadata address are denied as private_address', async () => {
    expect(await check(allowAllBox, SECRET_IP, secretPort)).toMatchObject({ decision: 'deny', reason: 'private_address' });
    expect(await check(allowAllBox, '169.254.169.254', 80)).toMatchObject({ decision: 'deny', reason: 'private_address' });
    const r = await rawExchange(gw.addr('http-proxy').port, `CONNECT ${SECRET_IP}:${secretPort} HTTP/1.1\r\nHost: x\r\n\r\n`, { localAddress: '127.0.0.2' });
    expect(statusOf(r.received)).toBe(403);
  });

  it('registering a devbox "at" the metadata / host-internal address does not open them', async () => {
    const phantom = await gw.api.call('POST', '/v1/devboxes', { name: 'phantom', network: { addresses: ['169.254.169.254', SECRET_IP, 'fd00:ec2::254'] } });
    // Either the API refuses to register guardrail-protected addresses ...
    if (phantom.status === 400) return;
    expect(phantom.status).toBe(200);
    try {
      // ... or the decision still applies the guardrail.
      for (const box of [allowAllBox, d2dBox]) {
        expect(await check(box, '169.254.169.254', 80), `${box} → metadata`).toMatchObject({ decision: 'deny', reason: 'private_address' });
        expect(await check(box, '[fd00:ec2::254]', 80), `${box} → metadata v6`).toMatchObject({ decision: 'deny', reason: 'private_address' });
        expect(await check(box, SECRET_IP, secretPort), `${box} → host loopback`).toMatchObject({ decision: 'deny', reason: 'private_address' });
      }
      // And through a real door: CONNECT to the host-internal service from the allow_all devbox.
      const r = await rawExchange(gw.addr('http-proxy').port, `CONNECT ${SECRET_IP}:${secretPort} HTTP/1.1\r\nHost: x\r\n\r\n`, { localAddress: '127.0.0.2', timeoutMs: 1500 });
      expect(r.received.toString('latin1')).not.toContain('TOP-SECRET');
      expect(statusOf(r.received)).toBe(403);
      expect(reasonOf(r.received)).toBe('private_address');
    } finally {
      await gw.api.call('POST', `/v1/devboxes/${phantom.body.id}/shutdown`);
    }
  });
});
