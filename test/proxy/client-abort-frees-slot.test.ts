/**
 * Issue 11, case 4: a devbox client that gives up on a request (FIN with nothing pipelined
 * after it, as curl -m does; or RST) while the origin is silent must cancel the upstream request
 * and free its connection slot within 1 s, on the raw front (GET) and the node:http path
 * (a request with a body). Before: the request, both sockets and the slot were held until
 * --idle-timeout-ms (300 s), and past 1,024 such aborts the devbox got 503 for everything.
 * Also: --response-timeout-ms bounds a silent origin (504), and answers while draining say
 * Connection: close. All against the real CLI.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import net from 'node:net';
import { startDnsUpstream, loopbackRecords, type DnsUpstream } from '../support/dns-upstream.js';
import { type CliGateway, cliMetric, startCliGateway } from '../support/cli-gateway.js';
import { waitFor } from '../support/wait.js';

const DEVBOX_ADDR = '127.0.0.2';

/** Accepts, reads the request, never answers; counts its open connections and requests seen. */
async function silentOrigin() {
  const open = new Set<net.Socket>();
  let requests = 0;
  const server = net.createServer((s) => {
    open.add(s);
    s.on('data', (d) => {
      requests += d.toString('latin1').split('HTTP/1.1\r\n').length - 1;
    });
    s.on('error', () => {});
    s.on('close', () => open.delete(s));
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return {
    port: (server.address() as net.AddressInfo).port,
    open: () => open.size,
    requests: () => requests,
    close: () => {
      for (const s of open) s.destroy();
      return new Promise<void>((ok) => server.close(() => ok()));
    },
  };
}

/** Holds every request until release(), then answers 200. */
async function heldOrigin() {
  const held: http.ServerResponse[] = [];
  let released = false;
  const server = http.createServer((_req, res) => {
    if (released) res.end('answer');
    else held.push(res);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return {
    port: (server.address() as net.AddressInfo).port,
    held: () => held.length,
    release: () => {
      released = true;
      for (const r of held.splice(0)) r.end('answer');
    },
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((ok) => server.close(() => ok()));
    },
  };
}

/** Sends `request` from the devbox address; resolves with the socket once written. */
function open(port: number, request: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress: DEVBOX_ADDR }, () => {
      s.write(request);
      resolve(s);
    });
    s.on('error', reject);
  });
}

/** Resolves with ms from now until the gateway closes `s` (or `max` if it does not). */
function closedWithin(s: net.Socket, max: number): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(max), max);
    s.once('close', () => {
      clearTimeout(timer);
      resolve(performance.now() - t0);
    });
    s.resume();
  });
}

function rawRequest(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const s = net.connect({ port, host: '127.0.0.1', localAddress: DEVBOX_ADDR }, () => s.write(request));
    s.on('data', (d) => {
      got += d.toString('latin1');
      if (/\r\n\r\n/.test(got) && /Content-Length: (\d+)/i.test(got)) {
        const len = Number(/Content-Length: (\d+)/i.exec(got)![1]);
        if (got.length - got.indexOf('\r\n\r\n') - 4 >= len) s.end();
      }
    });
    s.on('close', () => resolve(got));
    s.on('error', reject);
    setTimeout(() => s.destroy(), 15_000);
  });
}

describe('a client gone = its request cancelled (real CLI)', { timeout: 240_000 }, () => {
  let dns: DnsUpstream;
  let silent: Awaited<ReturnType<typeof silentOrigin>>;
  let gw: CliGateway;

  beforeAll(async () => {
    dns = await startDnsUpstream({ records: loopbackRecords(['silent.test', 'slow.test']) });
    silent = await silentOrigin();
    gw = await startCliGateway({ upstreamDnsPort: dns.port, args: ['--response-timeout-ms', '60000', '--log-allowed', 'none'] });
    const policy = await gw.api.policy('abort', { allowed_hostnames: ['silent.test', 'slow.test'] });
    await gw.api.devbox(policy, [DEVBOX_ADDR], 'aborter');
  }, 120_000);

  afterAll(async () => {
    await gw?.stop();
    await silent?.close();
    await dns?.close();
  });

  it('1,100 FIN aborts (GET on the front, POST on node:http): each closed and its upstream cancelled within 1 s; then the same devbox is served at once', async () => {
    const get = `GET http://silent.test:${silent.port}/wait HTTP/1.1\r\nHost: silent.test:${silent.port}\r\n\r\n`;
    const post = `POST http://silent.test:${silent.port}/wait HTTP/1.1\r\nHost: silent.test:${silent.port}\r\nContent-Length: 2\r\n\r\nhi`;
    const TOTAL = 1100;
    const BATCH = 50;
    let worst = 0;
    let seen = 0;
    for (let done = 0; done < TOTAL; done += BATCH) {
      // Every 11th batch goes the node:http way (a request body).
      const request = (done / BATCH) % 11 === 10 ? post : get;
      const socks = await Promise.all(Array.from({ length: BATCH }, () => open(gw.ports.proxy, request)));
      seen += BATCH;
      // Each request reached the silent origin: it is in flight, waiting.
      await waitFor(() => silent.requests() >= seen, 20_000, `${seen} requests at the origin`);
      const closes = socks.map((s) => closedWithin(s, 5000));
      for (const s of socks) s.end();
      worst = Math.max(worst, ...(await Promise.all(closes)));
      expect(worst, `gateway closed every aborted client (batch at ${done})`).toBeLessThan(5000);
      // The upstream requests were cancelled too (the origin sees its connections close).
      await waitFor(() => silent.open() === 0, 1000, 'origin connections closed');
    }
    // The budget is the issue's: slot and upstream freed within 1 s of the FIN.
    console.log(`worst FIN-to-close: ${Math.round(worst)} ms over ${TOTAL} aborts`);
    expect(worst).toBeLessThan(1000);
    // Served at once: not 503 (too many open connections).
    const r = await rawRequest(gw.ports.proxy, `GET http://slow.test:${gw.ports.api}/healthz HTTP/1.1\r\nHost: slow.test:${gw.ports.api}\r\nConnection: close\r\n\r\n`);
    expect(r.slice(0, 12)).toBe('HTTP/1.1 200');
    expect(await cliMetric(gw.apiUrl, 'egress_active_connections')).toBeLessThan(5);
  });

  it('an RST while waiting frees it too', async () => {
    const before = silent.requests();
    const s = await open(gw.ports.proxy, `GET http://silent.test:${silent.port}/rst HTTP/1.1\r\nHost: silent.test:${silent.port}\r\n\r\n`);
    await waitFor(() => silent.requests() > before, 10_000, 'request at the origin');
    s.resetAndDestroy();
    await waitFor(() => silent.open() === 0, 1000, 'origin connection closed after the RST');
  });
});

describe('--response-timeout-ms and draining (real CLI)', { timeout: 120_000 }, () => {
  it('a silent origin gets 504 after --response-timeout-ms on both paths; answers while draining say Connection: close', async () => {
    const dns = await startDnsUpstream({ records: loopbackRecords(['silent.test', 'slow.test']) });
    const silent = await silentOrigin();
    const slow = await heldOrigin();
    const gw = await startCliGateway({ upstreamDnsPort: dns.port, args: ['--response-timeout-ms', '2500', '--shutdown-grace-ms', '8000'] });
    try {
      const policy = await gw.api.policy('t', { allowed_hostnames: ['silent.test', 'slow.test'] });
      await gw.api.devbox(policy, [DEVBOX_ADDR], 'waiter');
      for (const req of [
        `GET http://silent.test:${silent.port}/ HTTP/1.1\r\nHost: silent.test:${silent.port}\r\nConnection: close\r\n\r\n`,
        `POST http://silent.test:${silent.port}/ HTTP/1.1\r\nHost: silent.test:${silent.port}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi`,
      ]) {
        const t0 = Date.now();
        const r = await rawRequest(gw.ports.proxy, req);
        expect(r.slice(0, 12)).toBe('HTTP/1.1 504');
        expect(Date.now() - t0).toBeLessThan(10_000);
      }
      // Draining: a keep-alive request in flight when SIGTERM comes is answered with Connection: close.
      const front = rawRequest(gw.ports.proxy, `GET http://slow.test:${slow.port}/ HTTP/1.1\r\nHost: slow.test:${slow.port}\r\n\r\n`);
      const nodeHttp = rawRequest(gw.ports.proxy, `POST http://slow.test:${slow.port}/ HTTP/1.1\r\nHost: slow.test:${slow.port}\r\nContent-Length: 2\r\n\r\nhi`);
      await waitFor(() => slow.held() === 2, 10_000, 'both requests at the origin');
      const stopped = gw.stop();
      await new Promise((r) => setTimeout(r, 300)); // kept: SIGTERM lands and draining starts before the origin answers
      slow.release();
      for (const r of [await front, await nodeHttp]) {
        expect(r.slice(0, 12)).toBe('HTTP/1.1 200');
        expect(r).toMatch(/\r\nConnection: close\r\n/i);
      }
      expect((await stopped).code).toBe(0);
    } finally {
      await gw.stop();
      await silent.close();
      await slow.close();
      await dns.close();
    }
  });
});
