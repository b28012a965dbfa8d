/**
 * The sidecar proof (issue #6): devboxes in their own network namespaces, with no proxy
 * settings at all, whose only way out is the gateway on the host, held there by the
 * nftables rules `egress-gateway firewall` prints.
 *
 *   devbox-a ──veth──┐                    ┌──veth── origin (HTTPS :443, HTTP :80, :8080, UDP :443, DNS :53)
 *   devbox-b ──veth──┤ host: gateway +    │
 *                    └ nftables ──────────┘
 *
 * Skips (loudly) only when this machine forbids network namespaces.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetnsLab, netnsUnavailable, run } from '../support/netns.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderFirewall } from '../../src/cli/firewall.js';
import { CHROMIUM, chromiumFlags, requireProgram } from '../support/real-clients.js';
import { tempDir } from '../support/temp.js';

const why = netnsUnavailable();
if (why !== null) process.stderr.write(`\n[netns] SKIPPING the sidecar proof: ${why}. It needs root and iproute2 (see docs/testing.md).\n\n`);
const suite = why === null ? describe : describe.skip;
/** The reason shows in the test report too, not only on stderr. */
const title = (t: string) => (why === null ? t : `${t} — SKIPPED: ${why}`);

interface OriginEvent {
  event: string;
  server?: string;
  host?: string | null;
  name?: string;
  type?: string;
  from?: string;
  transport?: string;
  url?: string;
}

/**
 * The origin's certificate, naming allowed.test and denied.test exactly (the shared test
 * certificate's `*.test` is a wildcard over a single label, which TLS clients refuse).
 */
const certDir = tempDir('netns-cert');
function originCert(): { certPath: string; keyPath: string } {
  const keyPath = join(certDir, 'key.pem');
  const certPath = join(certDir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', '/CN=egress-netns-origin', '-addext', 'subjectAltName=DNS:allowed.test,DNS:denied.test'], { stdio: 'ignore' });
  return { certPath, keyPath };
}

/** Any resolver address: the devbox's DNS is redirected wherever it points. */
const DEVBOX_RESOLVER = '192.0.2.53';

const resolvConf = `nameserver ${DEVBOX_RESOLVER}\noptions timeout:2 attempts:1\n`;
const lab = new NetnsLab({ roles: ['a', 'b', 'o'], resolvConf: { a: resolvConf, b: resolvConf } });
const table = `egw_e2e_${process.pid}`;

suite(title('sidecar deployment in real network namespaces'), { timeout: 60_000 }, () => {
  const a = lab.link('a');
  const b = lab.link('b');
  const o = lab.link('o');
  const originIp = o.nsIp;
  /** The gateway listens on the host end of devbox-a's link; devbox-b reaches it through the host too. */
  const gwAddr = a.hostIp;
  const events: OriginEvent[] = [];
  let gw: TestGateway;
  let policyA: string;
  let certPath: string;
  const control = { tcp: false, udp: false };

  const curl = (role: string, args: string[]) => lab.exec(role, 'curl', ['-sS', '--connect-timeout', '3', '--max-time', '5', '--cacert', certPath, ...args], 15_000);
  const dig = (role: string, args: string[]) => lab.exec(role, 'dig', ['+time=2', '+tries=1', ...args], 15_000);
  const seen = (pred: (e: OriginEvent) => boolean) => events.filter(pred);
  const fromDevbox = (e: OriginEvent) => e.from === a.nsIp || e.from === b.nsIp;
  const waitFor = async (pred: () => boolean, ms: number) => {
    const end = Date.now() + ms;
    while (!pred() && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    return pred();
  };

  beforeAll(async () => {
    const cert = originCert();
    certPath = cert.certPath;
    await lab.up();
    lab.enableForwarding();

    // The origin's servers, inside the origin namespace.
    lab.spawnIn('o', process.execPath, ['--import', 'tsx', 'test/support/netns-origin-server.ts', originIp, cert.certPath, cert.keyPath], (line) => {
      try {
        events.push(JSON.parse(line) as OriginEvent);
      } catch {
        /* not ours */
      }
    });
    if (!(await waitFor(() => events.some((e) => e.event === 'ready'), 20_000))) throw new Error('origin server did not start');

    // Control: before the firewall, devbox-a reaches the origin directly (so every "dropped" below is the firewall's doing).
    const direct = await curl('a', [`http://${originIp}:8080/control`]);
    control.tcp = direct.code === 0 && direct.stdout.includes('"server":"direct"');
    await lab.exec('a', 'bash', ['-c', `echo control > /dev/udp/${originIp}/443`]);
    control.udp = await waitFor(() => events.some((e) => e.event === 'udp443' && e.from === a.nsIp), 2000);

    // The gateway on the host, its doors on the host end of devbox-a's veth.
    gw = await startTestGateway({
      flags: {
        'transparent-tls': `${gwAddr}:0`,
        'transparent-http': `${gwAddr}:0`,
        dns: `${gwAddr}:0`,
        'http-proxy': `${gwAddr}:0`,
        socks: `${gwAddr}:0`,
        'upstream-dns': `${originIp}:53`,
        'allow-private': ['127.0.0.0/8', '198.18.0.0/15'],
        'dns-rate-limit': '0',
      },
    });
    policyA = await gw.api.policy('devbox-a', { allowed_hostnames: ['allowed.test'] });
    const policyB = await gw.api.policy('devbox-b', { allowed_hostnames: ['denied.test'] });
    await gw.api.devbox(policyA, [a.nsIp], 'devbox-a');
    await gw.api.devbox(policyB, [b.nsIp], 'devbox-b');

    // A door that is not implemented yet reports port 0: redirect to a closed port (fails closed).
    const p = (door: Parameters<TestGateway['addr']>[0]) => gw.addr(door).port || 1;
    await lab.loadNft(
      table,
      renderFirewall({
        table,
        devboxCidrs: [a.cidr, b.cidr],
        interfaces: [a.hostIf, b.hostIf],
        gatewayAddr: gwAddr,
        ports: { transparentTls: p('transparent-tls'), transparentHttp: p('transparent-http'), dns: p('dns'), httpProxy: p('http-proxy'), socks: p('socks5'), agentGateway: p('agent-gateway'), mcpHub: p('mcp-hub') },
      }),
    );
  }, 90_000);

  afterAll(async () => {
    await gw?.close();
    lab.down();
    rmSync(certDir, { recursive: true, force: true });
  });

  it("a devbox namespace has its own /etc/hosts: a host whose /etc/hosts names the test's names changes nothing", async () => {
    // A host file naming the test's names, mounted over /etc/hosts in a mount namespace of
    // its own (the host's real file is not touched): the host sees it, the devbox does not.
    const hostile = join(certDir, 'hostile-hosts');
    writeFileSync(hostile, '127.0.0.1 localhost\n127.0.0.1 allowed.test denied.test\n');
    const host = await run('unshare', ['-m', 'sh', '-c', `mount --bind ${hostile} /etc/hosts && getent hosts allowed.test`]);
    expect(host.stdout).toMatch(/^127\.0\.0\.1\s+allowed\.test/);
    const devbox = await run('unshare', ['-m', 'sh', '-c', `mount --bind ${hostile} /etc/hosts && ip netns exec ${a.ns} getent hosts allowed.test`]);
    // The devbox's answer comes from the gateway's DNS door (the origin's address), not the file.
    expect(devbox.stdout.trim().split(/\s+/)).toEqual([originIp, 'allowed.test']);
  });

  it('control: without the firewall a devbox reaches the origin directly (TCP and UDP 443)', () => {
    expect(control).toEqual({ tcp: true, udp: true });
  });

  it('devbox-a: dig allowed.test via the gateway answers with the origin; dig denied.test gets NXDOMAIN', async () => {
    const ok = await dig('a', ['allowed.test', 'A']);
    expect(ok.stdout).toMatch(/status: NOERROR/);
    expect(ok.stdout).toMatch(new RegExp(`allowed\\.test\\.\\s+\\d+\\s+IN\\s+A\\s+${originIp.replace(/\./g, '\\.')}`));
    const tcp = await dig('a', ['+tcp', 'allowed.test', 'A']);
    expect(tcp.stdout).toMatch(/status: NOERROR/);
    const denied = await dig('a', ['denied.test', 'A']);
    expect(denied.stdout).toMatch(/status: NXDOMAIN/);
    // Only the gateway asked the origin's resolver, from the host's address, never the devbox.
    expect(seen((e) => e.event === 'dns' && fromDevbox(e))).toEqual([]);
    expect(seen((e) => e.event === 'dns' && e.name === 'denied.test')).toEqual([]);
  });

  it('devbox-a: curl https://allowed.test succeeds through the transparent TLS door', async () => {
    const r = await curl('a', ['https://allowed.test/tls']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const body = JSON.parse(r.stdout) as OriginEvent;
    expect(body).toMatchObject({ server: 'https', host: 'allowed.test', url: '/tls' });
    // It arrived from the host (the gateway), not from the devbox.
    expect(body.from).toBe(o.hostIp);
  });

  /** Headless Chromium inside devbox-a (no proxy settings: the firewall takes it to the gateway); its DOM dump. */
  const chromium = async (args: string[]) => {
    requireProgram(CHROMIUM, 'chromium');
    const dir = tempDir('netns-chromium');
    try {
      // Its own TMPDIR: a killed Chromium leaves org.chromium.* files there, removed with dir.
      const r = await lab.exec('a', 'env', [`TMPDIR=${dir}`, 'timeout', '-s', 'KILL', '60', CHROMIUM, ...chromiumFlags(dir), '--ignore-certificate-errors', '--dump-dom', ...args], 70_000);
      const at = r.stdout.indexOf('<html');
      return at >= 0 ? r.stdout.slice(at) : '';
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it('devbox-a: headless Chromium loads https://allowed.test through the transparent TLS door (its GREASE ECH hello relayed)', async () => {
    const dom = await chromium(['https://allowed.test/chromium']);
    expect(dom).toContain('"url":"/chromium"');
    expect(seen((e) => e.event === 'http' && e.url === '/chromium' && e.from === o.hostIp).length).toBeGreaterThan(0);
  });

  it('devbox-a: headless Chromium does not load https://denied.test, even mapped straight to the origin', async () => {
    expect(await chromium(['https://denied.test/chromium-denied'])).not.toContain('chromium-denied');
    expect(await chromium([`--host-resolver-rules=MAP denied.test ${originIp}`, 'https://denied.test/chromium-sni'])).not.toContain('chromium-sni');
    expect(seen((e) => e.event === 'http' && (e.url === '/chromium-denied' || e.url === '/chromium-sni'))).toEqual([]);
  });

  it('devbox-a: curl http://allowed.test works through the transparent HTTP door', async () => {
    const r = await curl('a', ['http://allowed.test/plain']);
    expect(r.code).toBe(0);
    const body = JSON.parse(r.stdout) as OriginEvent;
    expect(body).toMatchObject({ server: 'http', host: 'allowed.test', url: '/plain', from: o.hostIp });
  });

  it('devbox-a: curl https://denied.test fails', async () => {
    const r = await curl('a', ['https://denied.test/']);
    expect(r.code).toBe(6); // could not resolve: the gateway's DNS door said NXDOMAIN
    expect(seen((e) => e.event === 'http' && e.host?.startsWith('denied.test') === true)).toEqual([]);
  });

  it('devbox-a: curl --resolve denied.test:443:<origin> (denied SNI) fails; plain HTTP gets 403', async () => {
    const tls = await curl('a', ['--resolve', `denied.test:443:${originIp}`, 'https://denied.test/sni']);
    expect([35, 52, 56]).toContain(tls.code); // TLS alert or connection closed during the handshake
    const plain = await curl('a', ['--resolve', `denied.test:80:${originIp}`, '-o', '/dev/null', '-w', '%{http_code}', 'http://denied.test/host']);
    expect(plain.stdout).toBe('403');
    expect(seen((e) => e.event === 'http' && e.host?.startsWith('denied.test') === true)).toEqual([]);
  });

  it('devbox-a: a TCP connection straight to the origin on another port is dropped', async () => {
    const r = await curl('a', [`http://${originIp}:8080/direct`]);
    expect(r.code).not.toBe(0);
    expect([7, 28]).toContain(r.code); // refused or timed out, never answered
    expect(seen((e) => e.event === 'http' && e.server === 'direct' && e.url === '/direct')).toEqual([]);
  });

  it('devbox-a: UDP 443 (QUIC) is dropped', async () => {
    const before = seen((e) => e.event === 'udp443').length;
    await lab.exec('a', 'bash', ['-c', `for i in 1 2 3; do echo quic > /dev/udp/${originIp}/443; done`]);
    const q = await dig('a', ['-p', '443', `@${originIp}`, 'quic.test']);
    expect(q.stdout).not.toMatch(/status: NOERROR/);
    await new Promise((r) => setTimeout(r, 300)); // kept: a window for datagrams that must never arrive
    expect(seen((e) => e.event === 'udp443').length).toBe(before);
  });

  it('devbox-a: dig @<origin dns> is redirected to the gateway, never answered by the origin', async () => {
    const nonce = `nonce-${process.pid}-${Date.now()}.test`;
    const r = await dig('a', [`@${originIp}`, nonce, 'A']);
    // Redirected: the gateway answers for the origin's address, NXDOMAIN with EDE 15 (the policy denies the name).
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/status: NXDOMAIN/);
    expect(r.stdout).toMatch(/EDE: 15 \(Blocked\)/);
    const tcp = await dig('a', ['+tcp', `@${originIp}`, nonce, 'A']);
    expect(tcp.stdout).toMatch(/status: NXDOMAIN/);
    expect(seen((e) => e.event === 'dns' && e.name === nonce)).toEqual([]);
    expect(seen((e) => e.event === 'dns' && fromDevbox(e))).toEqual([]);
  });

  it("devbox-a may still use the gateway's explicit proxy port", async () => {
    const r = await curl('a', ['-x', `http://${gwAddr}:${gw.addr('http-proxy').port}`, 'http://allowed.test/via-proxy']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ server: 'http', host: 'allowed.test', url: '/via-proxy' });
  });

  it('devbox-b with another policy sees its own allowlist', async () => {
    const ok = await curl('b', ['https://denied.test/b']);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ server: 'https', host: 'denied.test', url: '/b', from: o.hostIp });
    const no = await curl('b', ['--resolve', `allowed.test:443:${originIp}`, 'https://allowed.test/b']);
    expect(no.code).not.toBe(0);
    expect((await dig('b', ['allowed.test', 'A'])).stdout).toMatch(/status: NXDOMAIN/);
    expect((await dig('b', ['denied.test', 'A'])).stdout).toMatch(/status: NOERROR/);
    const direct = await curl('b', [`http://${originIp}:8080/direct-b`]);
    expect(direct.code).not.toBe(0);
  });

  it("changing devbox-a's policy through the API changes what it can reach on its next connection", async () => {
    expect((await curl('a', ['--resolve', `denied.test:443:${originIp}`, 'https://denied.test/before'])).code).not.toBe(0);
    await gw.api.updatePolicy(policyA, { allowed_hostnames: ['allowed.test', 'denied.test'] });
    const r = await curl('a', ['https://denied.test/after']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ server: 'https', host: 'denied.test', url: '/after' });
    expect((await dig('a', ['denied.test', 'A'])).stdout).toMatch(/status: NOERROR/);
    // And back: allowed.test removed, so it is now refused.
    await gw.api.updatePolicy(policyA, { allowed_hostnames: ['denied.test'] });
    expect((await curl('a', ['--resolve', `allowed.test:443:${originIp}`, 'https://allowed.test/removed'])).code).not.toBe(0);
  });
});

suite(title('sidecar deployment teardown'), () => {
  it('removed its namespaces, veths, /etc/netns files and nftables table, and restored ip_forward', async () => {
    const ns = await run('ip', ['netns', 'list']);
    for (const l of Object.values(lab.links)) {
      expect(ns.stdout).not.toContain(l.ns);
      expect((await run('ip', ['link', 'show', l.hostIf])).code).not.toBe(0);
    }
    expect((await run('nft', ['list', 'table', 'inet', table])).code).not.toBe(0);
    expect(lab.leftovers()).toEqual([]);
  });
});
