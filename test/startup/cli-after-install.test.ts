/**
 * Issue 11, case 5 (start): `egress-gateway` works after the README's set-up (`npm ci`), with no
 * build: the package's bin is a launcher that is in the repository, `npx egress-gateway` and
 * `npm exec` find it, and each command's --help lists its own flags with their defaults.
 * Before: the bin pointed at dist/ (absent until a build) and --help printed one text for all.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../support/cli-gateway.js';
import { runTree } from '../support/processes.js';

/** npx and npm exec start a shell and node under them: a time-out kills the whole tree. */
const run = (cmd: string, args: string[]) => runTree(cmd, args, { cwd: ROOT, timeoutMs: 60_000, env: { ...process.env, EGRESS_CONFIG: '' } });

describe('the egress-gateway command after npm ci', { timeout: 120_000 }, () => {
  it('the bin entry is a file in the repository that runs without a build', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; bin: Record<string, string>; dependencies: Record<string, string> };
    const bin = pkg.bin['egress-gateway']!;
    expect(existsSync(join(ROOT, bin))).toBe(true);
    const tracked = await run('git', ['ls-files', '--error-unmatch', bin]);
    expect(tracked.code).toBe(0);
    // tsx is what runs the sources: it must be a runtime dependency, installed by npm ci.
    expect(pkg.dependencies.tsx).toBeDefined();
    const direct = await run(process.execPath, [bin, '--version']);
    expect(direct.stdout.trim()).toBe(pkg.version);
  });

  it('npx egress-gateway and npm exec egress-gateway run it', async () => {
    const npx = await run('npx', ['--no-install', 'egress-gateway', '--version']);
    expect(npx.code).toBe(0);
    expect(npx.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    const exec = await run('npm', ['exec', '--no', '--', 'egress-gateway', 'firewall', '--help']);
    expect(exec.code).toBe(0);
    expect(exec.stdout).toMatch(/--devbox-cidr/);
  });

  it('per-command --help: each command its own flags, with defaults and env names; unknown flags exit 2', async () => {
    const help = async (cmd: string) => (await run(process.execPath, ['bin/egress-gateway.js', cmd, '--help'])).stdout.replace(/\s+/g, ' ');
    const serve = await help('serve');
    expect(serve).toMatch(/--response-timeout-ms <n> .*\(default: 60000\) \[env EGRESS_RESPONSE_TIMEOUT_MS\]/);
    expect(serve).toMatch(/--http-proxy <host:port\|off> .*\(default: 127\.0\.0\.1:3128\)/);
    expect(serve).toMatch(/--log-allowed <all\|sample:N\|none> .*\(default: sample:100\)/);
    const apply = await help('apply');
    expect(apply).toMatch(/--prune/);
    expect(apply).not.toMatch(/--http-proxy/);
    const bench = await help('bench');
    expect(bench).toMatch(/--duration <time> how long each scenario runs/);
    expect(bench).not.toMatch(/--prune/);
    const firewall = await help('firewall');
    expect(firewall).toMatch(/--force/);
    expect(new Set([serve, apply, bench, firewall]).size).toBe(4);
    const bad = await run(process.execPath, ['bin/egress-gateway.js', 'apply', '--no-such-flag', 'x']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/unknown option '--no-such-flag'/);
  });
});
