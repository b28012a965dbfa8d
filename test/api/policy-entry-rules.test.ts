/**
 * Issue #11 case 8, the entry rules: a wildcard over a public suffix is refused by the
 * Public Suffix List (before: `*.co.uk`, `*.com.au` were accepted by label counting), a
 * CIDR in allowed_hostnames is told to use allowed_cidrs (before: "is a URL"), and a CIDR
 * the guardrail always refuses is accepted with `warnings` and a log line (before: silently).
 * The API, the official SDK, and policy files through the real CLI (`check`, `apply`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Runloop from '@runloop/api-client';
import { call, errorOf, startTestApi, TOKEN_A, type TestApi } from '../support/api.js';
import { runCli } from '../support/run-cli.js';
import { tempDir } from '../support/temp.js';

/** Wildcards whose base is an ICANN public suffix: each would admit every registrant under it. */
const ICANN_SUFFIX_WILDCARDS = ['*.co.uk', '*.com.au', '*.com', '*.org.uk', '*.ac.jp', '*.foo.kawasaki.jp', '*.Co.UK.', '*.xn--p1ai'];
/** Wildcards over a registrable domain, or over a private-section suffix (one provider's customers). */
const ALLOWED_WILDCARDS = ['*.example.co.uk', '*.github.io', '*.blogspot.com', '*.city.kawasaki.jp', '*.corp.internal', '*.npmjs.org'];
/** Address ranges written where a host name belongs. */
const CIDR_HOSTNAMES = ['10.0.0.0/8', '192.168.1.0/24', 'fd00::/8', '2001:db8::/32', '8.8.8.8/32'];

const lines: string[] = [];
let api: TestApi;
let exempt: TestApi;
beforeAll(async () => {
  api = await startTestApi({ logLines: lines });
  exempt = await startTestApi({ extraFlags: [['allow-private', ['10.20.0.0/16']]] });
});
afterAll(async () => {
  await api.close();
  await exempt.close();
});

const create = (t: TestApi, body: unknown) => call(t, 'POST', '/v1/network-policies', { body });
let n = 0;
const name = () => `rules-${n++}`;

describe('wildcards over a public suffix (Public Suffix List, ICANN section)', () => {
  it.each(ICANN_SUFFIX_WILDCARDS)('refuses %s naming the suffix', async (entry) => {
    const msg = errorOf(await create(api, { name: name(), allowed_hostnames: ['github.com', entry] }), 400);
    expect(msg).toMatch(/^allowed_hostnames\[1\]: entry .* is rejected: /);
    if (entry !== '*.com' && entry !== '*.xn--p1ai') expect(msg).toMatch(/public suffix/); // one label: the two-label rule speaks first
  });

  it.each(ALLOWED_WILDCARDS)('accepts %s', async (entry) => {
    const r = await create(api, { name: name(), allowed_hostnames: [entry] });
    expect(r.status).toBe(200);
    expect(r.body.egress.allowed_hostnames).toEqual([entry]);
  });

  it('an update is held to the same rule', async () => {
    const id = (await create(api, { name: name(), allowed_hostnames: ['*.example.co.uk'] })).body.id;
    expect(errorOf(await call(api, 'POST', `/v1/network-policies/${id}`, { body: { allowed_hostnames: ['*.com.au'] } }), 400)).toMatch(/com\.au is a public suffix/);
  });
});

describe('a CIDR in allowed_hostnames', () => {
  it.each(CIDR_HOSTNAMES)('%s is refused with "use allowed_cidrs"', async (entry) => {
    const msg = errorOf(await create(api, { name: name(), allowed_hostnames: [entry] }), 400);
    expect(msg).toMatch(/use allowed_cidrs/);
    expect(msg).not.toMatch(/URL/);
  });
});

describe('a CIDR the guardrail always refuses', () => {
  it('is accepted with a warnings array naming it, and a log line', async () => {
    const r = await create(api, { name: 'warn-me', allowed_cidrs: [{ cidr: '8.8.8.0/24' }, { cidr: '10.1.0.0/16' }, { cidr: '169.254.169.254/32' }] });
    expect(r.status).toBe(200);
    expect(r.body.warnings).toHaveLength(2);
    expect(r.body.warnings[0]).toMatch(/^allowed_cidrs\[1\]: 10\.1\.0\.0\/16 lies inside 10\.0\.0\.0\/8.*--allow-private/);
    expect(r.body.warnings[1]).toMatch(/^allowed_cidrs\[2\]: 169\.254\.169\.254\/32 lies inside 169\.254\.0\.0\/16/);
    expect((await call(api, 'GET', `/v1/network-policies/${r.body.id}`)).body.warnings).toEqual(r.body.warnings);
    const logged = lines.map((l) => JSON.parse(l)).find((l) => l.event === 'policy_warnings' && l.policy === r.body.id);
    expect(logged?.warnings).toEqual(r.body.warnings);
  });

  it('a policy with only global or partly private ranges has no warnings field', async () => {
    const r = await create(api, { name: name(), allowed_cidrs: [{ cidr: '8.8.8.0/24' }, { cidr: '0.0.0.0/0' }, { cidr: '2001:4860::/32' }] });
    expect(r.status).toBe(200);
    expect(r.body).not.toHaveProperty('warnings');
  });

  it('a range --allow-private exempts (even in part) is not warned about', async () => {
    const r = await create(exempt, { name: name(), allowed_cidrs: [{ cidr: '10.20.30.0/24' }, { cidr: '10.0.0.0/8' }, { cidr: '10.99.0.0/16' }] });
    expect(r.status).toBe(200);
    expect(r.body.warnings).toEqual([expect.stringMatching(/^allowed_cidrs\[2\]: 10\.99\.0\.0\/16/)]);
  });

  it('the official SDK reads a view with warnings without complaint', async () => {
    const client = new Runloop({ bearerToken: TOKEN_A, baseURL: api.base });
    const p = await client.networkPolicies.create({ name: 'sdk-warn', allowed_cidrs: [{ cidr: '192.168.0.0/16' }] });
    expect(p.egress.allowed_cidrs).toEqual([{ cidr: '192.168.0.0/16' }]);
    expect((p as unknown as { warnings: string[] }).warnings).toEqual([expect.stringMatching(/192\.168\.0\.0\/16/)]);
    const got = await client.networkPolicies.retrieve(p.id);
    expect(got.id).toBe(p.id);
  });
});

describe('policy files: the same rules through the real CLI', { timeout: 60_000 }, () => {
  const dir = tempDir('rules');
  const file = (fname: string, text: string) => {
    const path = join(dir, fname);
    writeFileSync(path, text);
    return path;
  };

  it('check refuses a wildcard over a public suffix and a CIDR hostname, exit 2', async () => {
    const psl = await runCli(['check', '--policy', file('psl.yaml', 'name: psl\nallowed_hostnames: ["*.co.uk"]\n'), 'x.co.uk']);
    expect(psl.code).toBe(2);
    expect(psl.stderr).toMatch(/psl\.yaml: allowed_hostnames\[0\]: entry "\*\.co\.uk" is rejected: co\.uk is a public suffix/);
    const cidr = await runCli(['check', '--policy', file('cidr.yaml', 'name: cidr\nallowed_hostnames: ["10.0.0.0/8"]\n'), '10.1.2.3']);
    expect(cidr.code).toBe(2);
    expect(cidr.stderr).toMatch(/use allowed_cidrs/);
    const ok = await runCli(['check', '--policy', file('gh.yaml', 'name: gh\nallowed_hostnames: ["*.github.io"]\n'), 'me.github.io']);
    expect(ok.code).toBe(0);
  });

  it('check warns about a CIDR the guardrail always refuses', async () => {
    const r = await runCli(['check', '--policy', file('priv.yaml', 'name: priv\nallowed_cidrs: ["10.0.0.0/8"]\n'), '10.1.2.3']);
    expect(r.stderr).toMatch(/warning: .*priv\.yaml: allowed_cidrs\[0\]: 10\.0\.0\.0\/8 lies inside 10\.0\.0\.0\/8/);
  });

  it("apply refuses the folder before sending anything, and prints the gateway's warnings", async () => {
    const bad = tempDir('rules-bad');
    writeFileSync(join(bad, 'a.yaml'), 'name: a\nallowed_hostnames: ["*.com.au"]\n');
    const refused = await runCli(['apply', bad, '--api-url', api.base, '--token', TOKEN_A]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/com\.au is a public suffix/);
    const good = tempDir('rules-good');
    writeFileSync(join(good, 'lan.yaml'), 'name: lan-only\nallowed_cidrs: ["192.168.10.0/24"]\n');
    const applied = await runCli(['apply', good, '--api-url', api.base, '--token', TOKEN_A]);
    expect(applied.code).toBe(0);
    expect(applied.stdout).toMatch(/create lan-only/);
    expect(applied.stderr).toMatch(/warning: lan-only: allowed_cidrs\[0\]: 192\.168\.10\.0\/24 lies inside 192\.168\.0\.0\/16/);
  });
});
