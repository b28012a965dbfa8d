/**
 * Issue 11, case 5 (signals and start), against the real CLI: SIGHUP reloads the reloadable
 * settings of the config file and logs what changed (or refuses in one line) and never exits
 * (before, it killed the gateway silently); `npm start` then `kill $!` leaves no process
 * holding the ports (before, tsx's child kept every port).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDnsUpstream, loopbackRecords, type DnsUpstream } from '../support/dns-upstream.js';
import { startHttpOrigin, type Origin } from '../support/origin.js';
import { ApiClient } from '../support/gateway.js';
import { ROOT, logLines, loopbackPorts, startCliGateway } from '../support/cli-gateway.js';
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
    const dir = mkdtempSync(join(tmpdir(), 'egw-hup-'));
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

  it('npm start, then kill $!: the gateway itself stops and no process keeps the ports', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'egw-npm-'));
    const { ports, flags } = await loopbackPorts();
    const npm = spawn('npm', ['start', '--silent', '--', ...flags, '--db', join(dir, 'e.db'), '--upstream-dns', '127.0.0.1:9', '--shutdown-grace-ms', '500'], {
      cwd: ROOT,
      stdio: ['ignore', 'ignore', 'ignore'],
      env: { ...process.env, EGRESS_CONFIG: '' },
    });
    const npmExit = new Promise<void>((r) => npm.on('exit', () => r()));
    try {
      await waitFor(async () => (await fetch(`http://127.0.0.1:${ports.api}/healthz`).catch(() => null))?.ok === true, 60_000, 'gateway under npm start');
      npm.kill('SIGTERM'); // kill $!
      await npmExit;
      // Within the grace (0.5 s) plus the log flush and slack, every port is free.
      await waitFor(async () => (await refuses(ports.api)) && (await refuses(ports.proxy)) && (await refuses(ports.socks)), 5000, 'ports released');
    } finally {
      npm.kill('SIGKILL');
    }
  });
});
