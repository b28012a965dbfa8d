/** Every invalid request to /v1/network-policies gets a 400 (or 413) in the one error shape, naming what is wrong. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, errorOf, startTestApi, type TestApi } from '../support/api.js';

let api: TestApi;
beforeAll(async () => {
  api = await startTestApi();
});
afterAll(async () => {
  await api.close();
});

const create = (body: unknown, headers?: Record<string, string>) => call(api, 'POST', '/v1/network-policies', { body, headers });

async function policyCount(): Promise<number> {
  const r = await call(api, 'GET', '/v1/network-policies?limit=5000');
  return r.body.total_count as number;
}

describe('allowed_hostnames entries', () => {
  const bad: Array<[string, RegExp]> = [
    ['*', /wildcard/],
    ['*.', /wildcard/],
    ['*.com', /two labels/],
    ['a.*.b.com', /wildcard/],
    ['*.*.example.com', /wildcard/],
    ['http://x.com', /URL/],
    ['x.com:443', /port/],
    ['1.2.3.4', /IP address/],
    ['[::1]', /IP address/],
    ['', /empty/],
    [' github.com', /spaces/],
    ['a'.repeat(64) + '.com', /label longer/],
    [`${'abcdefghi.'.repeat(26)}com`, /longer than 253/],
    ['exa%mple.com', /not a valid host name/],
    ['foo..com', /empty label/],
  ];
  for (const [entry, why] of bad) {
    it(`rejects ${JSON.stringify(entry.length > 40 ? entry.slice(0, 20) + '…' : entry)} naming the field and entry`, async () => {
      const before = await policyCount();
      const msg = errorOf(await create({ name: `bad-${Math.random()}`, allowed_hostnames: ['ok.example.com', entry] }), 400);
      expect(msg).toContain('allowed_hostnames[1]');
      expect(msg).toContain(JSON.stringify(entry));
      expect(msg).toMatch(why);
      expect(await policyCount()).toBe(before); // nothing half-written
    });
  }

  it('rejects a non-string entry', async () => {
    const msg = errorOf(await create({ name: 'nonstring', allowed_hostnames: ['a.com', 5] }), 400);
    expect(msg).toContain('allowed_hostnames[1]');
  });

  it('stores entries normalised and de-duplicated', async () => {
    const r = await create({ name: 'normalised', allowed_hostnames: ['GitHub.COM', 'github.com.', '*.NPMjs.org', 'bücher.example', 'github.com'] });
    expect(r.status).toBe(200);
    expect(r.body.egress.allowed_hostnames).toEqual(['github.com', '*.npmjs.org', 'xn--bcher-kva.example']);
  });

  it('rejects a bad entry on update and leaves the policy as it was', async () => {
    const p = (await create({ name: 'update-target', allowed_hostnames: ['keep.example.com'] })).body;
    const msg = errorOf(await call(api, 'POST', `/v1/network-policies/${p.id}`, { body: { name: 'renamed', allowed_hostnames: ['*.com'] } }), 400);
    expect(msg).toContain('"*.com"');
    const after = (await call(api, 'GET', `/v1/network-policies/${p.id}`)).body;
    expect(after.name).toBe('update-target');
    expect(after.egress.allowed_hostnames).toEqual(['keep.example.com']);
    expect(after.update_time_ms).toBe(p.update_time_ms);
  });
});

describe('allowed_cidrs', () => {
  it.each([
    ['10.0.0.1/8', /host bits/],
    ['10.0.0.0', /prefix length/],
    ['10.0.0.0/33', /prefix/],
    ['example.com/24', /not an IPv4/],
    ['2001:db8::1/32', /host bits/],
  ])('rejects cidr %s', async (cidr, why) => {
    const msg = errorOf(await create({ name: 'cidr', allowed_cidrs: [{ cidr }] }), 400);
    expect(msg).toContain('allowed_cidrs[0].cidr');
    expect(msg).toContain(JSON.stringify(cidr));
    expect(msg).toMatch(why);
  });

  it('rejects bad ports', async () => {
    expect(errorOf(await create({ name: 'p', allowed_cidrs: [{ cidr: '10.0.0.0/8', ports: [{ port: 0 }] }] }), 400)).toContain('allowed_cidrs[0].ports[0].port');
    expect(errorOf(await create({ name: 'p', allowed_cidrs: [{ cidr: '10.0.0.0/8', ports: [{ port: 65536 }] }] }), 400)).toContain('allowed_cidrs[0].ports[0].port');
    expect(errorOf(await create({ name: 'p', allowed_cidrs: [{ cidr: '10.0.0.0/8', ports: [{ port: 443, end_port: 80 }] }] }), 400)).toContain('end_port');
    expect(errorOf(await create({ name: 'p', allowed_cidrs: [{ cidr: '10.0.0.0/8', ports: [{ port: 53, protocol: 'ICMP' }] }] }), 400)).toContain('protocol');
    expect(errorOf(await create({ name: 'p', allowed_cidrs: [{ cidr: '10.0.0.0/8', extra: 1 }] }), 400)).toContain('allowed_cidrs[0].extra');
  });

  it('accepts IPv4 and IPv6 ranges and returns them canonical', async () => {
    const r = await create({ name: 'cidrs-ok', allowed_cidrs: [{ cidr: '192.168.0.0/16' }, { cidr: '2001:DB8::/32', ports: [{ port: 53, protocol: 'UDP' }] }] });
    expect(r.status).toBe(200);
    expect(r.body.egress.allowed_cidrs).toEqual([{ cidr: '192.168.0.0/16' }, { cidr: '2001:db8::/32', ports: [{ port: 53, protocol: 'UDP' }] }]);
  });
});

describe('names', () => {
  it('duplicate name in the same account is a 400 that says so', async () => {
    expect((await create({ name: 'twice' })).status).toBe(200);
    const msg = errorOf(await create({ name: 'twice' }), 400);
    expect(msg).toMatch(/already exists/);
    expect(msg).toContain('"twice"');
    const r = await create({ name: 'twice' });
    expect(r.body.error.code).toBe('duplicate_name');
  });

  it('renaming onto an existing name is a 400', async () => {
    await create({ name: 'name-one' });
    const two = (await create({ name: 'name-two' })).body;
    expect(errorOf(await call(api, 'POST', `/v1/network-policies/${two.id}`, { body: { name: 'name-one' } }), 400)).toMatch(/already exists/);
  });

  it('empty, blank, over-long and missing names are rejected', async () => {
    expect(errorOf(await create({ name: '' }), 400)).toContain('"name"');
    expect(errorOf(await create({ name: '   ' }), 400)).toContain('"name"');
    expect(errorOf(await create({ name: 'x'.repeat(257) }), 400)).toMatch(/"name" must be at most 256/);
    expect((await create({ name: 'x'.repeat(256) })).status).toBe(200);
    expect(errorOf(await create({}), 400)).toMatch(/missing required field "name"/);
    expect(errorOf(await create({ name: null }), 400)).toContain('"name"');
  });
});

describe('request shape', () => {
  it('unknown fields are a 400 naming the field', async () => {
    expect(errorOf(await create({ name: 'u', allow_everything: true }), 400)).toBe('unknown field "allow_everything"');
    const p = (await create({ name: 'u2' })).body;
    expect(errorOf(await call(api, 'POST', `/v1/network-policies/${p.id}`, { body: { egress: {} } }), 400)).toBe('unknown field "egress"');
    expect(errorOf(await call(api, 'POST', `/v1/network-policies/${p.id}/delete`, { body: { force: true } }), 400)).toBe('unknown field "force"');
  });

  it('wrong types are a 400 naming the field', async () => {
    expect(errorOf(await create({ name: 'w', allow_all: 'true' }), 400)).toBe('field "allow_all" must be a boolean');
    expect(errorOf(await create({ name: 'w', allow_all: 1 }), 400)).toBe('field "allow_all" must be a boolean');
    expect(errorOf(await create({ name: 5 }), 400)).toBe('field "name" must be a string');
    expect(errorOf(await create({ name: 'w', allowed_hostnames: 'github.com' }), 400)).toBe('field "allowed_hostnames" must be an array');
    expect(errorOf(await create({ name: 'w', description: 7 }), 400)).toBe('field "description" must be a string');
    expect(errorOf(await create([{ name: 'w' }]), 400)).toBe('request body must be a JSON object');
  });

  it('non-JSON bodies are a 400, other media types a 415', async () => {
    expect(errorOf(await create('{"name": "x",'), 400)).toMatch(/not valid JSON/);
    expect(errorOf(await create('name=x', { 'content-type': 'application/x-www-form-urlencoded' }), 415)).toMatch(/JSON/);
    expect(errorOf(await create('hello', { 'content-type': 'text/plain' }), 415)).toMatch(/JSON/);
  });

  it('bodies over 1 MiB are a 413', async () => {
    const before = await policyCount();
    const r = await create({ name: 'huge', allowed_hostnames: Array.from({ length: 60_000 }, (_, i) => `host-${i}.example.com`) });
    expect(errorOf(r, 413)).toMatch(/1 MiB/);
    expect(r.body.error.code).toBe('payload_too_large');
    expect(await policyCount()).toBe(before);
  });

  it('an empty JSON body on delete is accepted as {}', async () => {
    const p = (await create({ name: 'empty-delete' })).body;
    const r = await call(api, 'POST', `/v1/network-policies/${p.id}/delete`, { body: '', headers: { 'content-type': 'application/json' } });
    expect(r.status).toBe(200);
    expect(r.body.id).toBe(p.id);
  });

  it('unknown routes get the error shape too', async () => {
    expect(errorOf(await call(api, 'GET', '/v1/nothing-here'), 404)).toMatch(/no route/);
    expect(errorOf(await call(api, 'DELETE', '/v1/network-policies/npol_x'), 404)).toMatch(/no route/);
  });
});
