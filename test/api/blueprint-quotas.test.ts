/**
 * Blueprint builds are bounded like the rest of what an account stores (issue #27, part 2).
 * The attack: with a quota of 4 addresses, queued builds held thousands of addresses (the
 * quota counted only running devboxes), so another account's registration of one of them was
 * refused; and builds of ~1 MB each were unlimited in number and size. Here in miniature,
 * through the real API on both backends.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOKEN_B, call, errorOf, startTestApi, type TestApi } from '../support/api.js';

const build = (api: TestApi, name: string, addresses: string[], token?: string, extra: Record<string, unknown> = {}) => call(api, 'POST', '/v1/blueprints', { token, body: { name, network: { addresses }, ...extra } });
const devbox = (api: TestApi, addresses: string[], token?: string) => call(api, 'POST', '/v1/devboxes', { token, body: { network: { addresses } } });

describe('active builds count toward --max-addresses-per-account', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi({ extraFlags: [['max-addresses-per-account', ['4']]] });
  });
  afterAll(async () => api?.close());

  it('builds holding more than the quota are refused, and the addresses stay free for another account', async () => {
    const first = await build(api, 'b1', ['10.27.0.1', '10.27.0.2']);
    expect(first.status).toBe(200);
    expect((await build(api, 'b2', ['10.27.0.3', '10.27.0.4'])).status).toBe(200);
    // Queued builds past the quota: each refused, naming the quota and its setting.
    for (let i = 0; i < 5; i++) {
      const r = await build(api, `over-${i}`, [`10.27.1.${2 * i + 1}`, `10.27.1.${2 * i + 2}`]);
      expect(errorOf(r, 403)).toMatch(/quota addresses_per_account exceeded: .*would hold 6 addresses; the limit is 4 \(--max-addresses-per-account\)/);
      expect(r.body.error.code).toBe('quota_exceeded');
    }
    // A devbox of the same account: the builds' addresses count.
    expect(errorOf(await devbox(api, ['10.27.2.1']), 403)).toMatch(/quota addresses_per_account exceeded/);
    // Another account registers an address a refused build asked for.
    expect((await devbox(api, ['10.27.1.1'], TOKEN_B)).status).toBe(200);
  });

  it('an address an active build holds is refused to another account with the generic 409', async () => {
    const r = await devbox(api, ['10.27.0.1'], TOKEN_B);
    expect(errorOf(r, 409)).toBe('network.addresses: 10.27.0.1 cannot be registered by this account');
    expect(r.body.error.code).toBe('address_unavailable');
    expect(r.text).not.toMatch(/bpt_|blueprint|build/);
  });

  it('a build that completes frees its addresses for the quota', async () => {
    const list = await call(api, 'GET', '/v1/blueprints?name=b1');
    const id = list.body.blueprints[0].id as string;
    expect(errorOf(await devbox(api, ['10.27.3.1', '10.27.3.2']), 403)).toMatch(/addresses_per_account/);
    for (const status of ['provisioning', 'building', 'build_complete']) expect((await call(api, 'POST', `/v1/blueprints/${id}/status`, { body: { status } })).status).toBe(200);
    expect((await devbox(api, ['10.27.3.1', '10.27.3.2'])).status).toBe(200);
  });
});

describe('--max-blueprints-per-account', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi({ extraFlags: [['max-blueprints-per-account', ['2']]] });
  });
  afterAll(async () => api?.close());

  it('counts every stored blueprint of the account; another account has its own; a delete frees one', async () => {
    const a = await build(api, 'one', []);
    expect(a.status).toBe(200);
    for (const status of ['provisioning', 'building', 'build_complete']) expect((await call(api, 'POST', `/v1/blueprints/${a.body.id}/status`, { body: { status } })).status).toBe(200);
    expect((await build(api, 'two', [])).status).toBe(200);
    const third = await build(api, 'three', []);
    expect(errorOf(third, 403)).toMatch(/^quota blueprints_per_account exceeded: this account already holds that many blueprints; the limit is 2 \(--max-blueprints-per-account\)$/);
    expect((await build(api, 'theirs', [], TOKEN_B)).status).toBe(200);
    expect((await call(api, 'POST', `/v1/blueprints/${a.body.id}/delete`)).status).toBe(200);
    expect((await build(api, 'three', [])).status).toBe(200);
  });

  it('has a documented default', async () => {
    const d = await startTestApi();
    try {
      expect(d.config.maxBlueprintsPerAccount).toBe(100);
    } finally {
      await d.close();
    }
  });
});

describe('the blueprint body is bounded', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi();
  });
  afterAll(async () => api?.close());

  it('a build of ~1 MB (256 setup commands of 4 KiB) is a 413 naming the limit, and nothing is stored', async () => {
    const commands = Array.from({ length: 256 }, (_, i) => `echo ${i} ${'x'.repeat(4000)}`);
    const r = await build(api, 'huge', [], undefined, { system_setup_commands: commands });
    expect(errorOf(r, 413)).toMatch(/^blueprint too large: its dockerfile, system_setup_commands, metadata and name take \d+ bytes; the limit is 131072 bytes$/);
    expect(r.body.error.code).toBe('payload_too_large');
    expect((await call(api, 'GET', '/v1/blueprints')).body.total_count).toBe(0);
  });

  it('metadata counts too; a blueprint under the limit is taken', async () => {
    const metadata = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`k${i}`, 'v'.repeat(1000)]));
    expect(errorOf(await build(api, 'tags', [], undefined, { metadata }), 413)).toMatch(/the limit is 131072 bytes/);
    const ok = await build(api, 'fine', [], undefined, { dockerfile: `FROM debian\n${'RUN true\n'.repeat(7000)}`, system_setup_commands: ['apt-get update'] });
    expect(ok.status).toBe(200);
  });
});
