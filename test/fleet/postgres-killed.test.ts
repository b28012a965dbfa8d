/**
 * kill -9 PostgreSQL under a running gateway (`serve --db postgres://…`): the API answers
 * 503 storage_unavailable and /readyz fails while /healthz stays up, the doors keep enforcing
 * what they hold in memory (an allowed request passes, a denied one is refused); with
 * PostgreSQL back, writes succeed again and reach the doors.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOOPBACK_DOORS, killAll, spawnCli, startServe, type RunningServe } from '../support/serve-process.js';
import { type PostgresServer, startPostgres } from '../support/postgres.js';
import { type Origin, startHttpOrigin } from '../support/origin.js';
import { api, until, viaProxy } from './pg-clients.js';

const TOKEN = 'pgkill-token-0001';
let pg: PostgresServer;
let gw: RunningServe;
let origin: Origin;
let proxyPort: number;

beforeAll(async () => {
  pg = await startPostgres();
  origin = await startHttpOrigin();
  gw = await startServe(['--db', await pg.createDatabase(), '--api-token', `${TOKEN}:acct-k`, '--allow-private', '127.0.0.0/8']);
  const listening = gw
    .out()
    .split('\n')
    .find((l) => l.includes('egress-gateway listening'))!;
  proxyPort = Number(/"http-proxy":"127\.0\.0\.1:(\d+)"/.exec(listening)![1]);
}, 240_000);

afterAll(async () => {
  await gw?.stop();
  killAll();
  await origin?.close();
  pg?.stop();
});

describe('PostgreSQL killed under a running gateway', () => {
  it('API 503 storage_unavailable, /readyz fails, the doors keep enforcing; writes resume when it is back', async () => {
    const p = (await api(gw.apiUrl, TOKEN, 'POST', '/v1/network-policies', { name: 'local', allowed_cidrs: [{ cidr: '127.0.0.1/32' }] })).body;
    const d = (await api(gw.apiUrl, TOKEN, 'POST', '/v1/devboxes', { launch_parameters: { network_policy_id: p.id }, network: { addresses: [] } })).body;
    const allowed = () => viaProxy(proxyPort, `${origin.url}/ok`, d.id, d.proxy_credentials.password);
    const denied = () => viaProxy(proxyPort, 'http://denied.example/', d.id, d.proxy_credentials.password);
    expect(await allowed()).toBe(200);
    expect(await denied()).toBe(403);
    expect((await api(gw.apiUrl, TOKEN, 'GET', '/readyz')).status).toBe(200);

    pg.kill9();

    const write = await until(
      () => api(gw.apiUrl, TOKEN, 'POST', '/v1/network-policies', { name: 'while-down' }),
      (r) => r.status === 503,
    );
    expect(write.status).toBe(503);
    expect(write.body.error.code).toBe('storage_unavailable');
    const ready = await until(
      () => api(gw.apiUrl, TOKEN, 'GET', '/readyz'),
      (r) => r.status === 503,
    );
    expect(ready.body.error.code).toBe('storage_unavailable');
    expect((await api(gw.apiUrl, TOKEN, 'GET', '/healthz')).status).toBe(200);
    const list = await api(gw.apiUrl, TOKEN, 'GET', '/v1/network-policies');
    expect([list.status, list.body.error?.code]).toEqual([503, 'storage_unavailable']);
    // Fail-static: the doors decide from memory, the same as before.
    expect(await allowed()).toBe(200);
    expect(await denied()).toBe(403);

    await pg.start();

    const back = await until(
      () => api(gw.apiUrl, TOKEN, 'POST', `/v1/network-policies/${p.id}`, { allowed_cidrs: [] }),
      (r) => r.status === 200,
      30_000,
    );
    expect(back.status).toBe(200);
    // The write was acknowledged once the doors had it: the origin is now denied.
    expect(await allowed()).toBe(403);
    expect(
      (
        await until(
          () => api(gw.apiUrl, TOKEN, 'GET', '/readyz'),
          (r) => r.status === 200,
          30_000,
        )
      ).status,
    ).toBe(200);
  }, 120_000);
});

describe('PostgreSQL unreachable at start', () => {
  it('is one line naming --db, without the password, exit 2; the start-up line hides the password too', async () => {
    const p = spawnCli(['serve', ...LOOPBACK_DOORS, '--db', 'postgres://egress:s3cret-pw@127.0.0.1:1/egress']);
    expect(await p.exited).toBe(2);
    // ECONNREFUSED, or on a loaded box the 3 s connect timeout first: either way one line.
    const lines = p.err().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^egress-gateway: bad config: --db: cannot use postgres:\/\/egress:\*\*\*@127\.0\.0\.1:1\/egress: the database server cannot be reached \(/);
    expect(p.out() + p.err()).not.toContain('s3cret-pw');
  }, 90_000);
});
