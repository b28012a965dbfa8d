/**
 * `suggest` writes what devboxes sent into the operator's policy file (issue #27, part 3).
 * The attacks, through the real doors and the real CLI:
 * - a SOCKS5 domain (and a DNS name) holding a line break was recorded verbatim and printed
 *   raw in the file's comments, so the next line was YAML the devbox wrote (here a second
 *   `allow_all: true`): the file failed `apply`, or worse, said what the devbox wanted;
 * - three denied names under a public out-of-band or tunnel service (oast.fun, interact.sh,
 *   a tenant of ngrok-free.app) made it propose `*.oast.fun`, an exfiltration endpoint;
 * - names under a suffix the Public Suffix List does not know (corp.internal) were folded too.
 * What it must still do: fold ordinary siblings (`*.example.com`).
 */
import { execFile } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliGateway, startCliGateway } from '../support/cli-gateway.js';
import { TOKEN_A } from '../support/gateway.js';
import { runCli } from '../support/run-cli.js';
import { socksConnect } from '../support/socks.js';
import { waitFor } from '../support/wait.js';

const SOURCE = '127.0.0.79';
const OAST = ['a1b2.oast.fun', 'c3d4.oast.fun', 'e5f6.oast.fun'];
const INTERACT = ['x1.interact.sh', 'x2.interact.sh', 'x3.interact.sh'];
const NGROK = ['a.tenant1.ngrok-free.app', 'b.tenant1.ngrok-free.app', 'c.tenant1.ngrok-free.app'];
const INTERNAL = ['db.corp.internal', 'ci.corp.internal', 'git.corp.internal'];
const ORDINARY = ['one.pkgs.example.com', 'two.pkgs.example.com', 'three.pkgs.example.com'];
/** Printed as an escaped YAML string (printable ASCII) that reads back as itself. */
const DESCRIPTION = 'caf\u00e9 "quoted" \\ \u{1f600} end';
/** What a devbox would like the operator's file to say. */
const INJECTED = 'evil.example.org\nallow_all: true\n#';

let gw: CliGateway;
let devbox: { id: string; password: string };
let policyId: string;

function sh(cmd: string, args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => execFile(cmd, args, { timeout: 15_000 }, (e, stdout) => resolve({ code: e ? 1 : 0, stdout })));
}

/** curl through the HTTP proxy with the devbox's credentials: the status code. */
async function curl(host: string): Promise<number> {
  const r = await sh('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', '-x', `http://${devbox.id}:${devbox.password}@127.0.0.1:${gw.ports.proxy}`, `http://${host}/`]);
  return Number(r.stdout);
}

beforeAll(async () => {
  gw = await startCliGateway({ args: ['--events-flush-ms', '50', '--workers', '1'] });
  policyId = await gw.api.policy('hostile', { description: DESCRIPTION, allowed_hostnames: ['allowed.example.net'] });
  const d = await gw.api.call('POST', '/v1/devboxes', { launch_parameters: { network_policy_id: policyId }, network: { addresses: [SOURCE] } });
  expect(d.status).toBe(200);
  devbox = { id: d.body.id, password: d.body.proxy_credentials.password };
}, 90_000);

afterAll(async () => {
  await gw?.stop();
  if (gw) rmSync(gw.dir, { recursive: true, force: true });
});

describe('suggest on hostile recorded names', { timeout: 90_000 }, () => {
  it('records the denials through the HTTP proxy, SOCKS5 and DNS doors', async () => {
    for (const h of [...OAST, ...INTERACT, ...NGROK, ...INTERNAL, ...ORDINARY]) expect(await curl(h), h).toBe(403);
    await expect(socksConnect(gw.ports.socks, { host: INJECTED, port: 80 }, { userId: devbox.id, password: devbox.password })).rejects.toThrow();
    // A DNS label holding a line break (dig's \010), from the devbox's address.
    const dig = await sh('dig', ['+tries=1', '+time=3', '-b', SOURCE, '-p', String(gw.ports.dns), '@127.0.0.1', 'x\\010allow_all:\\032true.example.org']);
    expect(dig.stdout).toMatch(/status: (NXDOMAIN|REFUSED)/);
    await waitFor(
      async () => {
        const r = await gw.api.call('GET', `/v1/egress/events?devbox_id=${devbox.id}&limit=100`);
        const hosts: string[] = r.body.events.map((e: { host: string }) => e.host);
        // SOCKS5 records the domain verbatim; the DNS door as read (its control bytes as '?').
        return hosts.includes(INJECTED) && hosts.some((h) => h.startsWith('x') && h.includes('allow_all')) && hosts.includes(ORDINARY[2]!);
      },
      10_000,
      'the denials to be recorded',
    );
  });

  let file: string;
  it('prints only printable text; hostile names are dropped, counted, never a line of their own', async () => {
    const s = await runCli(['suggest', '--devbox', devbox.id, '--since', '1h', '--api-url', gw.apiUrl, '--token', TOKEN_A]);
    expect(s.stderr).toBe('');
    expect(s.code).toBe(0);
    file = s.stdout;
    expect(file).toMatch(/^[\x20-\x7e\n]*$/);
    const lines = file.trimEnd().split('\n');
    for (const l of lines) expect(l).toMatch(/^(# .*|[a-z_]+: .*|allowed_hostnames:| {2}# .*| {2}- "[a-z0-9.*-]+"( {2}# .*)?)$/);
    expect(lines.filter((l) => l.startsWith('allow_all:'))).toEqual(['allow_all: false']);
    expect(file).not.toContain('evil.example.org');
    expect(file).toMatch(/^# {3}2 refusals of destinations that are not valid host names or addresses \(not shown\)$/m);
  });

  it('proposes no wildcard over a shared out-of-band or tunnel service, nor over a suffix the PSL does not list', () => {
    expect(file).not.toMatch(/\*\.(oast\.fun|interact\.sh|tenant1\.ngrok-free\.app|ngrok-free\.app|corp\.internal|internal)"/);
    for (const n of [...OAST, ...INTERACT, ...NGROK, ...INTERNAL]) expect(file).toMatch(new RegExp(`^ {2}- "${n.replace(/\./g, '\\.')}" {2}# added: seen 1 time via http$`, 'm'));
    expect(file).toContain('  # 3 names under oast.fun, listed one by one rather than as *.oast.fun: oast.fun is a shared out-of-band, tunnel or hosting service');
    expect(file).toContain('  # 3 names under tenant1.ngrok-free.app, listed one by one rather than as *.tenant1.ngrok-free.app: ngrok-free.app is a shared');
    expect(file).toContain('  # 3 names under corp.internal, listed one by one rather than as *.corp.internal: internal is not in the Public Suffix List, so corp.internal is not a registrable domain');
    // Ordinary siblings under a registrable domain still fold.
    expect(file).toMatch(/^ {2}- "\*\.example\.com" {2}# added: 3 names under example\.com/m);
  });

  it('the file applies as printed, and the policy is what it says', async () => {
    const path = join(gw.dir, 'suggested.yaml');
    writeFileSync(path, file);
    const a = await runCli(['apply', path, '--api-url', gw.apiUrl, '--token', TOKEN_A]);
    expect(a.stderr).toBe('');
    expect(a.code).toBe(0);
    const p = await gw.api.call('GET', `/v1/network-policies/${policyId}`);
    expect(p.body.egress.allow_all).toBe(false);
    expect(p.body.description).toBe(DESCRIPTION);
    const hosts: string[] = p.body.egress.allowed_hostnames;
    expect(hosts).toEqual(expect.arrayContaining(['allowed.example.net', '*.example.com', ...OAST, ...INTERACT, ...NGROK, ...INTERNAL]));
    expect(hosts.filter((h) => h.startsWith('*.'))).toEqual(['*.example.com']);
    expect(await curl('never-seen.oast.fun')).toBe(403);
  });
});
