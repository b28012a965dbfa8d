/**
 * `egress-gateway firewall`: the rendered ruleset is what nftables accepts (checked with
 * `nft -c`, which validates against the kernel without applying), it says what the sidecar
 * needs, and deploy/nftables/egress-gateway.nft is exactly what the documented flags print.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { run } from '../support/netns.js';
import { runTree } from '../support/processes.js';
import { renderFirewall, DEFAULT_PORTS, defaultRouteInterfaces } from '../../src/cli/firewall.js';

const cli = (args: string[], env: Record<string, string> = {}) => runTree(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], { env: { ...process.env, ...env }, timeoutMs: 20_000 });

/** The flags deploy/nftables/egress-gateway.nft and the README document. */
const DOC_ARGS = ['firewall', '--devbox-cidr', '10.88.0.0/16', '--interface', 'vmtap*', '--gateway-addr', '10.88.0.1'];

describe('egress-gateway firewall', () => {
  it('prints a ruleset that nftables accepts (nft -c)', async () => {
    const table = `egw_fw_${process.pid}`;
    const r = await cli([...DOC_ARGS, '--table', table, '--transparent-tls', '0.0.0.0:9443', '--transparent-http', '0.0.0.0:9080', '--dns', '0.0.0.0:9053']);
    expect(r.stderr.replace(/npm warn.*\n/g, '')).toBe('');
    expect(r.code).toBe(0);
    const text = r.stdout;
    expect(text).toContain(`table inet ${table} {`);
    expect(text).toContain('iifname "vmtap*" jump devbox_redirect');
    expect(text).toContain('ip saddr { 10.88.0.0/16 } jump devbox_redirect');
    expect(text).toContain('tcp dport 443 dnat ip to 10.88.0.1:9443');
    expect(text).toContain('tcp dport 80 dnat ip to 10.88.0.1:9080');
    expect(text).toContain('udp dport 53 dnat ip to 10.88.0.1:9053');
    expect(text).toContain('tcp dport 53 dnat ip to 10.88.0.1:9053');
    expect(text).toContain('ip daddr 10.88.0.1 tcp dport { 1080, 3128, 8090, 8091, 9053, 9080, 9443 } accept');
    expect(text).toMatch(/chain forward \{[^}]*iifname "vmtap\*" counter drop[^}]*ip saddr \{ 10\.88\.0\.0\/16 \} counter drop/);
    const check = await run('nft', ['-c', '-f', '-'], { input: text });
    expect(check.stderr).toBe('');
    expect(check.code).toBe(0);
    // Check mode applied nothing.
    expect((await run('nft', ['list', 'table', 'inet', table])).code).not.toBe(0);
  });

  it('takes its settings from the environment too, and turned-off doors get no port and no redirect', async () => {
    const r = await cli(['firewall', '--http-proxy', 'off', '--socks', 'off'], {
      EGRESS_DEVBOX_CIDR: '10.1.0.0/24,fd00:1::/64',
      EGRESS_GATEWAY_ADDR: '10.1.0.1',
      EGRESS_FIREWALL_TABLE: 'egw_env',
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('table inet egw_env {');
    expect(r.stdout).toContain('ip6 saddr { fd00:1::/64 } counter drop');
    // Transparent doors are off unless given: 80/443 are not redirected (dropped in forward), only DNS is.
    expect(r.stdout).toContain(`ip daddr 10.1.0.1 tcp dport { ${DEFAULT_PORTS.dns}, ${DEFAULT_PORTS.agentGateway}, ${DEFAULT_PORTS.mcpHub} } accept`);
    expect(r.stdout).not.toMatch(/dport (443|80) dnat/);
    expect(r.stdout).toContain(`udp dport 53 dnat ip to 10.1.0.1:${DEFAULT_PORTS.dns}`);
    expect((await run('nft', ['-c', '-f', '-'], { input: r.stdout })).code).toBe(0);
  });

  it('with the TLS door off, 443 is not redirected to a port nobody listens on (issue 11 case 9)', { timeout: 60_000 }, async () => {
    const r = await cli([...DOC_ARGS, '--transparent-http', '0.0.0.0:9080', '--dns', 'off']);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(/dport 443/);
    expect(r.stdout).not.toMatch(/dport 53 dnat/);
    expect(r.stdout).toContain('tcp dport 80 dnat ip to 10.88.0.1:9080');
    expect(r.stdout).toContain('transparent TLS off');
    expect((await run('nft', ['-c', '-f', '-'], { input: r.stdout })).code).toBe(0);
  });

  it('refuses a devbox range of every address and the uplink interface unless --force (issue 11 case 9)', async () => {
    const r = await cli(['firewall', '--devbox-cidr', '0.0.0.0/0', '--gateway-addr', '10.0.0.1']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--devbox-cidr.*every address.*--force/);
    expect((await cli(['firewall', '--devbox-cidr', '0.0.0.0/0', '--gateway-addr', '10.0.0.1', '--force'])).code).toBe(0);
    const uplink = defaultRouteInterfaces()[0];
    if (uplink !== undefined) {
      const u = await cli(['firewall', '--interface', `${uplink.slice(0, 2)}*`, '--devbox-cidr', '10.88.0.0/16', '--gateway-addr', '10.88.0.1']);
      expect(u.code).toBe(2);
      expect(u.stderr).toMatch(/--interface.*default-route.*--force/);
    }
    // The check itself, independent of this host's routes.
    const opts = { table: 't', devboxCidrs: ['10.0.0.0/8'], interfaces: ['wan*'], gatewayAddr: '10.0.0.1', ports: DEFAULT_PORTS, uplinks: ['wan0'] };
    expect(() => renderFirewall(opts)).toThrow(/--interface/);
    expect(renderFirewall({ ...opts, force: true })).toContain('iifname "wan*"');
    expect(() => renderFirewall({ ...opts, interfaces: ['vmtap*'] })).not.toThrow();
    expect(() => renderFirewall({ ...opts, interfaces: ['wan0'] })).toThrow(/default-route/);
    expect(() => renderFirewall({ ...opts, interfaces: [], devboxCidrs: ['::/0'] })).toThrow(/every address/);
  }, 120_000);

  it('refuses bad input with exit code 2 and a line naming the flag', async () => {
    const noAddr = await cli(['firewall', '--devbox-cidr', '10.0.0.0/24']);
    expect(noAddr.code).toBe(2);
    expect(noAddr.stderr).toMatch(/--gateway-addr/);
    const badCidr = await cli(['firewall', '--devbox-cidr', '10.0.0.0/33', '--gateway-addr', '10.0.0.1']);
    expect(badCidr.code).toBe(2);
    expect(badCidr.stderr).toMatch(/--devbox-cidr/);
    expect(() => renderFirewall({ table: 'x; drop', devboxCidrs: ['10.0.0.0/8'], interfaces: [], gatewayAddr: '10.0.0.1', ports: DEFAULT_PORTS })).toThrow(/--table/);
    expect(() => renderFirewall({ table: 't', devboxCidrs: ['10.0.0.0/8'], interfaces: ['eth0" accept #'], gatewayAddr: '10.0.0.1', ports: DEFAULT_PORTS })).toThrow(/--interface/);
    expect(() => renderFirewall({ table: 't', devboxCidrs: ['10.0.0.0/8'], interfaces: [], gatewayAddr: '10.0.0.1', ports: { ...DEFAULT_PORTS, dns: 0 } })).toThrow(/port 0/);
  });

  it('deploy/nftables/egress-gateway.nft is what the documented command prints', async () => {
    const r = await cli(DOC_ARGS, { EGRESS_TRANSPARENT_TLS: '0.0.0.0:8443', EGRESS_TRANSPARENT_HTTP: '0.0.0.0:8081', EGRESS_DNS: '0.0.0.0:5353' });
    expect(r.code).toBe(0);
    expect(readFileSync('deploy/nftables/egress-gateway.nft', 'utf8')).toBe(r.stdout);
  });

  it('the DaemonSet and systemd unit probe /readyz (readiness) and /healthz (liveness) and expose /metrics', () => {
    const docs = readFileSync('deploy/kubernetes/egress-gateway.yaml', 'utf8')
      .split(/^---$/m)
      .map((d) => parseYaml(d) as Record<string, any>)
      .filter(Boolean);
    const ds = docs.find((d) => d.kind === 'DaemonSet')!;
    expect(ds).toBeDefined();
    const pod = ds.spec.template;
    const main = pod.spec.containers.find((c: any) => c.name === 'egress-gateway');
    expect(main.readinessProbe.httpGet.path).toBe('/readyz');
    expect(main.livenessProbe.httpGet.path).toBe('/healthz');
    expect(pod.metadata.annotations['prometheus.io/path']).toBe('/metrics');
    expect(pod.spec.volumes.some((v: any) => v.hostPath?.path === '/var/lib/egress-gateway')).toBe(true);
    expect(main.volumeMounts.some((m: any) => m.mountPath === '/data')).toBe(true);
    const unit = readFileSync('deploy/systemd/egress-gateway.service', 'utf8');
    expect(unit).toMatch(/\/healthz/);
    expect(unit).toMatch(/-v \/var\/lib\/egress-gateway:\/data/);
  });
});
