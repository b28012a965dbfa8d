/**
 * Issue 11, case 5 (start), and issue 23 (compiled code at run time): `egress-gateway` works
 * after the README's set-up (`npm ci`, whose `prepare` script builds dist/ once): the package's
 * bin is a launcher in the repository, `npx egress-gateway` and `npm exec` find it, each
 * command's --help lists its own flags with their defaults, and `serve` with every process it
 * starts runs that JavaScript with no transpiler loaded.
 * Before: the bin ran the TypeScript through tsx in every process (5–9 s to /readyz).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, loopbackPorts } from '../support/cli-gateway.js';
import { killTree, runTree, spawnTree } from '../support/processes.js';
import { tempDir } from '../support/temp.js';
import { waitFor } from '../support/wait.js';

/** npx and npm exec start a shell and node under them: a time-out kills the whole tree. */
const run = (cmd: string, args: string[]) => runTree(cmd, args, { cwd: ROOT, timeoutMs: 60_000, env: { ...process.env, EGRESS_CONFIG: '' } });

/** Command lines of every process in group `pgid` (the gateway and the processes it started). */
function groupCommands(pgid: number): string[] {
  const out: string[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]) !== pgid) continue;
      out.push(readFileSync(`/proc/${d}/cmdline`, 'utf8').replaceAll('\0', ' '));
    } catch {
      /* gone */
    }
  }
  return out;
}

describe('the egress-gateway command after npm ci', { timeout: 120_000 }, () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; bin: Record<string, string>; scripts: Record<string, string>; dependencies: Record<string, string> };
  beforeAll(async () => {
    // What npm ci runs after installing (the `prepare` script).
    const built = await run('npm', ['run', '--silent', 'prepare']);
    expect(built.stderr).toBe('');
    expect(built.code).toBe(0);
  });

  it('npm ci builds the JavaScript once (prepare) and the bin entry runs it', async () => {
    expect(pkg.scripts.prepare).toMatch(/tsc -p tsconfig\.build\.json/);
    // No transpiler is needed at run time: it is not a runtime dependency.
    expect(pkg.dependencies.tsx).toBeUndefined();
    const bin = pkg.bin['egress-gateway']!;
    expect(existsSync(join(ROOT, bin))).toBe(true);
    const tracked = await run('git', ['ls-files', '--error-unmatch', bin]);
    expect(tracked.code).toBe(0);
    expect(readFileSync(join(ROOT, bin), 'utf8')).not.toMatch(/tsx/);
    const direct = await run(process.execPath, [bin, '--version']);
    expect(direct.stdout.trim()).toBe(pkg.version);
    expect(direct.stderr).toBe('');
  });

  it('serve and every process it starts (its workers; the API is a thread) run the build with no transpiler', async () => {
    const dir = tempDir('compiled');
    const { ports, flags } = await loopbackPorts();
    const child = spawnTree(process.execPath, [pkg.bin['egress-gateway']!, 'serve', ...flags, '--db', join(dir, 'egress.db'), '--upstream-dns', '127.0.0.1:9', '--workers', '2', '--shutdown-grace-ms', '200'], {
      cwd: ROOT,
      stdio: 'ignore',
      env: { ...process.env, EGRESS_CONFIG: '', NODE_OPTIONS: '' },
    });
    try {
      await waitFor(async () => (await fetch(`http://127.0.0.1:${ports.api}/readyz`).catch(() => null))?.ok === true, 60_000, 'compiled gateway /readyz');
      const cmds = groupCommands(child.pid!);
      // The primary (with the API thread) and two workers, each a plain node on dist/.
      expect(cmds.filter((c) => c.includes('dist/src/wiring/worker-main.js'))).toHaveLength(2);
      expect(cmds.length).toBe(3);
      for (const c of cmds) expect(c).not.toMatch(/tsx|esbuild|\.ts\b/);
    } finally {
      killTree(child);
    }
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
