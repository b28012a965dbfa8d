/**
 * Issue 11, case 5 (signals and start), against the real CLI: SIGHUP reloads the reloadable
 * settings of the config file and logs what changed (or refuses in one line) and never exits
 * (before, it killed the gateway silently); `npm start` or `npx egress-gateway serve`, then
 * `kill $!`, stops the gateway cleanly and leaves no process (before, tsx's child kept every
 * port; under npx the gateway ran on).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import net from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDnsUpstream, loopbackRecords, type DnsUpstream } from '../support/dns-upstream.js';
import { startHttpOrigin, type Origin } from '../support/origin.js';
import { ApiClient } from '../support/gateway.js';
import { ROOT, logLines, loopbackPorts, startCliGateway } from '../support/cli-gateway.js';
import { groupAlive, killTree, membersOf, spawnTree } from '../support/processes.js';
import { tempDir } from '../support/temp.js';
import { waitFor } from '../support/wait.js';

const DEVBOX = '127.0.0.2';
let dns: DnsUpstream;
let origin: Origin;

beforeAll(async () => {
  dns = await startDnsUpstream({ records: loopbackRecords(['allowed.test']) });
  origin = await startHttpOrigin();
});
afterAll(async () => {
  await origin?.close();
  await dns?.close();
});

function proxied(port: number): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, localAddress: DEVBOX, path: `http://allowed.test:${origin.port}/x`, headers: { host: `allowed.test:${origin.port}` } });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
    req.end();
  });
}

function refuses(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

describe('signals (real CLI)', { timeout: 180_000 }, () => {
  it('SIGHUP applies tokens, allow-private, rate limit and log level from the file, names what needs a restart, refuses a bad file in one line, never exits', async () => {
    const dir = tempDir('hup');
    const file = join(dir, 'gateway.yaml');
    writeFileSync(file, 'api_token: ["tok-a:acct-a"]\nallow_private: []\nlog_level: info\n');
    const gw = await startCliGateway({ stdout: 'pipe', upstreamDnsPort: dns.port, configFile: file });
    try {
      const p = await gw.api.policy('hup', { allowed_hostnames: ['allowed.test'] });
      await gw.api.devbox(p, [DEVBOX], 'hup');
      const tokC = new ApiClient(gw.apiUrl, 'tok-c');
      expect(await proxied(gw.ports.proxy)).toBe(403); // 127.0.0.1: private address
      expect((await tokC.call('GET', '/v1/network-policies')).status).toBe(401);

      writeFileSync(file, 'api_token: ["tok-a:acct-a", "tok-c:acct-a"]\nallow_private: ["127.0.0.0/8"]\nlog_level: debug\ndns_rate_limit: 50\nconnect_timeout_ms: 5000\n');
      gw.child.kill('SIGHUP');
      await waitFor(() => logLines(gw.out()).some((l) => l.event === 'reload'), 10_000, 'the reload line');
      const line = logLines(gw.out()).find((l) => l.event === 'reload')!;
      expect(line.changed).toEqual(expect.arrayContaining(['--api-token', '--allow-private', '--log-level', '--dns-rate-limit']));
      expect(line.needs_restart).toEqual(['--connect-timeout-ms']);
      expect(await proxied(gw.ports.proxy)).toBe(200);
      expect((await tokC.call('GET', '/v1/network-policies')).status).toBe(200);

      writeFileSync(file, 'api_token: [\n');
      gw.child.kill('SIGHUP');
      await waitFor(() => logLines(gw.out()).some((l) => l.event === 'reload_refused'), 10_000, 'the refusal line');
      const refused = logLines(gw.out()).filter((l) => l.event === 'reload_refused');
      expect(refused).toHaveLength(1);
      expect(String(refused[0]!.msg)).toMatch(/not reloaded.*--config/);
      // Still the reloaded settings, still serving.
      expect(gw.child.exitCode).toBeNull();
      expect((await fetch(`${gw.apiUrl}/healthz`)).status).toBe(200);
      expect(await proxied(gw.ports.proxy)).toBe(200);
      const stop = await gw.stop();
      expect(stop.code).toBe(0);
    } finally {
      await gw.stop();
    }
  });

  // The wrapper's PID is what `cmd &` gives in $!, and what a supervisor signals. Before: under
  // npx, npm passed SIGTERM to the shell it started, which exited without passing it on, and the
  // gateway (primary, workers, API thread) ran on under PID 1 without a shutdown line.
  const wrappers: Array<[string, string, (flags: string[]) => string[]]> = [
    ['npm start', 'npm', (f) => ['start', '--silent', '--', ...f]],
    ['npx egress-gateway serve', 'npx', (f) => ['--no-install', 'egress-gateway', 'serve', ...f]],
  ];
  it.each(wrappers)('%s, then kill $! (SIGTERM to the wrapper): the gateway with its workers and API thread stops with its shutdown line, and no process is left', async (_name, cmd, argv) => {
    const dir = tempDir('wrapper');
    const { ports, flags } = await loopbackPorts();
    const wrapper = spawnTree(cmd, argv([...flags, '--db', join(dir, 'e.db'), '--upstream-dns', '127.0.0.1:9', '--shutdown-grace-ms', '500', '--workers', '2', '--log-level', 'info']), {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'ignore'],
      env: { ...process.env, EGRESS_CONFIG: '' },
    });
    let out = '';
    wrapper.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const pgid = wrapper.pid!;
    try {
      await waitFor(async () => (await fetch(`http://127.0.0.1:${ports.api}/healthz`).catch(() => null))?.ok === true, 90_000, `the gateway under ${cmd}`);
      // The API (healthz) may answer before the workers are up: wait for their line.
      const workers = await waitFor(() => logLines(out).find((l) => l.event === 'workers')?.pids as number[] | undefined, 60_000, 'the workers line');
      expect(workers).toHaveLength(2);
      await waitFor(() => logLines(out).some((l) => l.event === 'listening'), 60_000, 'the listening line');
      // Every process of the tree shares the wrapper's process group: npm or npx (and a shell), the gateway, 2 workers (the API is a thread).
      expect(membersOf(pgid).length).toBeGreaterThanOrEqual(4);
      wrapper.kill('SIGTERM'); // kill $!
      await waitFor(() => !groupAlive(pgid), 15_000, `every process under ${cmd} to exit`);
      expect(logLines(out).map((l) => l.event)).toEqual(expect.arrayContaining(['shutdown', 'stopped']));
      expect(await refuses(ports.api)).toBe(true);
      expect(await refuses(ports.proxy)).toBe(true);
      expect(await refuses(ports.socks)).toBe(true);
    } finally {
      killTree(wrapper);
    }
  });
});
