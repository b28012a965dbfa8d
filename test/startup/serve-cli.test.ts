/**
 * The `serve` command as an operator meets it: start-up lines that name each listener,
 * one clear line and exit code 2 for a bad config, the first token printed once, and a
 * clean exit on SIGTERM.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, writeFileSync, mkdirSync, chmodSync } from 'node:fs';
import dgram from 'node:dgram';
import net from 'node:net';
import { join } from 'node:path';
import { spawnTree } from '../support/processes.js';
import { tempDir } from '../support/temp.js';
import { waitFor } from '../support/wait.js';

const MAIN = join(process.cwd(), 'src', 'main.ts');

/** serve in its own process group; whatever is still running after the file is killed with its tree (test/support/setup-file.ts). */
function run(args: string[], env: Record<string, string> = {}) {
  const child = spawnTree(process.execPath, ['--import', 'tsx', MAIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, exited, out: () => out, err: () => err };
}

const loopbackOnly = ['--api', '127.0.0.1:0', '--http-proxy', '127.0.0.1:0', '--socks', '127.0.0.1:0', '--dns', '127.0.0.1:0', '--agent-gateway', 'off', '--mcp-hub', 'off', '--upstream-dns', '127.0.0.1:9'];

describe('serve', { timeout: 60_000 }, () => {
  it('starts on free ports, names every listener, prints the first token once, and stops cleanly on SIGTERM', async () => {
    const dir = tempDir('serve');
    const db = join(dir, 'nested', 'egress.db');
    const first = run(['serve', '--db', db, ...loopbackOnly]);
    await waitFor(() => first.out().includes('egress-gateway listening'));
    const line = first
      .out()
      .split('\n')
      .find((l) => l.includes('egress-gateway listening'))!;
    const msg = JSON.parse(line).msg as string;
    for (const door of ['api', 'http-proxy', 'socks5', 'dns']) expect(msg).toMatch(new RegExp(`${door} on 127\\.0\\.0\\.1:\\d+`));
    expect(msg).not.toMatch(/:0\b/);
    await waitFor(() => first.err().includes('Created API token'));
    const token = /export RUNLOOP_API_KEY=(\S+)/.exec(first.err())![1]!;
    const apiPort = Number(/api on 127\.0\.0\.1:(\d+)/.exec(msg)![1]);
    const res = await fetch(`http://127.0.0.1:${apiPort}/v1/network-policies`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);

    const second = run(['serve', '--db', db, ...loopbackOnly]);
    await waitFor(() => second.out().includes('egress-gateway listening'));
    expect(second.err()).not.toContain('Created API token');
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  }, 120_000);

  it('refuses a bad address with one line naming the setting and exit code 2', async () => {
    const r = run(['serve', ...loopbackOnly, '--http-proxy', 'nowhere:99999']);
    expect(await r.exited).toBe(2);
    expect(r.err().trim().split('\n')).toHaveLength(1);
    expect(r.err()).toMatch(/--http-proxy/);
  });

  it('refuses a port in use at once, as its own error naming the port, the setting and the process holding it', async () => {
    // Held by this test's process, so the holder the error names is known.
    const busy = net.createServer();
    await new Promise<void>((ok) => busy.listen(0, '127.0.0.1', ok));
    const port = (busy.address() as net.AddressInfo).port;
    const dir = tempDir('serve');
    const r = run(['serve', '--db', join(dir, 'e.db'), ...loopbackOnly, '--socks', `127.0.0.1:${port}`, '--workers', '2']);
    const code = await r.exited;
    busy.close();
    expect(code).toBe(2);
    expect(r.err().trim().split('\n')).toHaveLength(1);
    expect(r.err().startsWith(`egress-gateway: port in use: --socks: cannot listen on 127.0.0.1:${port}: address already in use by pid ${process.pid} (`)).toBe(true);
    expect(r.err()).toMatch(new RegExp(`address already in use by pid ${process.pid} \\(.+\\); stop it or give --socks another address`));
    // At once: before the start-up line, the store, the API thread or any worker.
    expect(r.out()).toBe('');
    expect(existsSync(join(dir, 'e.db'))).toBe(false);
  });

  it('names the process holding the DNS port over UDP', async () => {
    const busy = dgram.createSocket('udp4');
    await new Promise<void>((ok) => busy.bind(0, '127.0.0.1', ok));
    const port = busy.address().port;
    const dir = tempDir('serve');
    const r = run(['serve', '--db', join(dir, 'e.db'), ...loopbackOnly, '--dns', `127.0.0.1:${port}`]);
    const code = await r.exited;
    busy.close();
    expect(code).toBe(2);
    expect(r.err()).toMatch(new RegExp(`^egress-gateway: port in use: --dns: cannot listen on 127\\.0\\.0\\.1:${port}: address already in use by pid ${process.pid} `));
  });

  it('refuses an unreadable db with exit code 2', async () => {
    const dir = tempDir('serve');
    const bad = join(dir, 'not-a-db');
    writeFileSync(bad, 'this is not sqlite '.repeat(100));
    const r = run(['serve', '--db', bad, ...loopbackOnly]);
    expect(await r.exited).toBe(2);
    expect(r.err()).toMatch(/--db/);
  });

  it('refuses a db folder it cannot create', async () => {
    const dir = tempDir('serve');
    mkdirSync(join(dir, 'ro'));
    writeFileSync(join(dir, 'ro', 'file'), '');
    chmodSync(join(dir, 'ro'), 0o500);
    // A path under a regular file can never be created, even by root.
    const r = run(['serve', '--db', join(dir, 'ro', 'file', 'egress.db'), ...loopbackOnly]);
    expect(await r.exited).toBe(2);
    expect(r.err()).toMatch(/--db/);
  });
});
