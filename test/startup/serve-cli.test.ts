/**
 * The `serve` command as an operator meets it: start-up lines that name each listener,
 * one clear line and exit code 2 for a bad config, the first token printed once, and a
 * clean exit on SIGTERM.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, mkdirSync, chmodSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../support/wait.js';

const TSX = join(process.cwd(), 'node_modules', '.bin', 'tsx');
const MAIN = join(process.cwd(), 'src', 'main.ts');
const children: ChildProcess[] = [];

function run(args: string[], env: Record<string, string> = {}) {
  const child = spawn(TSX, [MAIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, exited, out: () => out, err: () => err };
}

const loopbackOnly = ['--api', '127.0.0.1:0', '--http-proxy', '127.0.0.1:0', '--socks', '127.0.0.1:0', '--dns', '127.0.0.1:0', '--agent-gateway', 'off', '--mcp-hub', 'off', '--upstream-dns', '127.0.0.1:9'];

afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

describe('serve', { timeout: 60_000 }, () => {
  it('starts on free ports, names every listener, prints the first token once, and stops cleanly on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'egw-serve-'));
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

  it('refuses a port in use, naming the setting', async () => {
    const busy = net.createServer();
    await new Promise<void>((ok) => busy.listen(0, '127.0.0.1', ok));
    const port = (busy.address() as net.AddressInfo).port;
    const dir = mkdtempSync(join(tmpdir(), 'egw-serve-'));
    const r = run(['serve', '--db', join(dir, 'e.db'), ...loopbackOnly, '--socks', `127.0.0.1:${port}`]);
    const code = await r.exited;
    busy.close();
    expect(code).toBe(2);
    expect(r.err()).toMatch(/--socks.*address already in use/);
  });

  it('refuses an unreadable db with exit code 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'egw-serve-'));
    const bad = join(dir, 'not-a-db');
    writeFileSync(bad, 'this is not sqlite '.repeat(100));
    const r = run(['serve', '--db', bad, ...loopbackOnly]);
    expect(await r.exited).toBe(2);
    expect(r.err()).toMatch(/--db/);
  });

  it('refuses a db folder it cannot create', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'egw-serve-'));
    mkdirSync(join(dir, 'ro'));
    writeFileSync(join(dir, 'ro', 'file'), '');
    chmodSync(join(dir, 'ro'), 0o500);
    // A path under a regular file can never be created, even by root.
    const r = run(['serve', '--db', join(dir, 'ro', 'file', 'egress.db'), ...loopbackOnly]);
    expect(await r.exited).toBe(2);
    expect(r.err()).toMatch(/--db/);
  });
});
