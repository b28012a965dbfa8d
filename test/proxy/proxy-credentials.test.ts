/**
 * Threat: credential confusion. Valid proxy credentials identify their devbox from any
 * source address; wrong ones get 407 and never fall back to the source address (a devbox
 * must not borrow another's policy, nor an attacker guess its way to the address identity).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ProxyEnv, curl, headerOf, rawExchange, startProxyEnv, statusOf } from '../support/proxy.js';

let env: ProxyEnv;
beforeAll(async () => {
  env = await startProxyEnv();
});
afterAll(async () => env?.close());

describe('proxy credentials (Proxy-Authorization: Basic)', () => {
  it("curl -U with devbox A credentials from an unregistered address gets A's policy (HTTP and CONNECT)", async () => {
    const U = `${env.a.username}:${env.a.password}`;
    const r = await curl(['--interface', '127.0.0.9', '-x', env.proxyUrl, '-U', U, `http://allowed.test:${env.http.port}/cred`]);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body.toString()).url).toBe('/cred');
    const t = await curl(['--interface', '127.0.0.9', '-x', env.proxyUrl, '--proxy-user', U, '--cacert', env.certPath, `https://www.allowed.test:${env.https.port}/bytes/1000`]);
    expect(t.status).toBe(200);
    expect(t.body.length).toBe(1000);
    const d = await curl(['--interface', '127.0.0.9', '-x', env.proxyUrl, '-U', U, `http://other.test:${env.http.port}/`]);
    expect(d.status).toBe(403);
  });

  it("credentials win over the source address: B's credentials from A's address get B's policy", async () => {
    const U = `${env.b.username}:${env.b.password}`;
    const r = await curl(['--interface', '127.0.0.2', '-x', env.proxyUrl, '-U', U, `http://other.test:${env.http.port}/`]);
    expect(r.status).toBe(200);
    const d = await curl(['--interface', '127.0.0.2', '-x', env.proxyUrl, '-U', U, `http://allowed.test:${env.http.port}/`]);
    expect(d.status).toBe(403);
  });

  it('a wrong password is 407 with Proxy-Authenticate, even from a registered address', async () => {
    const r = await curl(['--interface', '127.0.0.2', '-x', env.proxyUrl, '-U', `${env.a.username}:wrong`, `http://allowed.test:${env.http.port}/`]);
    expect(r.status).toBe(407);
    expect(headerOf(r.headers, 'Proxy-Authenticate')).toMatch(/^Basic realm=/);
    const c = await curl(['--interface', '127.0.0.2', '-x', env.proxyUrl, '-U', `${env.a.username}:wrong`, '--cacert', env.certPath, `https://www.allowed.test:${env.https.port}/`]);
    expect(c.connectStatus).toBe(407);
  });

  it('an unknown user, a non-Basic scheme and garbage are 407', async () => {
    for (const value of [`Basic ${Buffer.from('nobody:x').toString('base64')}`, 'Bearer abc', 'Basic !!!', 'Basic ' + Buffer.from('nocolon').toString('base64')]) {
      const r = await rawExchange(env.proxyPort, `GET http://allowed.test:${env.http.port}/ HTTP/1.1\r\nHost: allowed.test:${env.http.port}\r\nProxy-Authorization: ${value}\r\nConnection: close\r\n\r\n`, { localAddress: '127.0.0.2' });
      expect(statusOf(r.received), value).toBe(407);
    }
  });
});
