/**
 * Issue #11 case 7, with real faults and the real CLI (needs root: tmpfs mounts, chattr):
 * - a full database disk → 503 storage_unavailable naming the cause (before: 500
 *   internal_error), /readyz 503 while /healthz stays 200, and service back once space is;
 * - a read-only db (read-only mount, immutable file) at start → one line naming the
 *   problem, exit 2 (before: exit 1 and a stack trace);
 * - a read-only mount with a new folder → one line saying so, exit 2 (before: "ENOENT mkdir").
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { killAll, spawnCli, startServe, LOOPBACK_DOORS } from '../support/serve-process.js';
import { waitFor } from '../support/wait.js';
import { runCli } from '../support/run-cli.js';
import { openStore } from '../../src/store/index.js';
import { tempDir } from '../support/temp.js';

const root = tempDir('store-faults');
const mounts: string[] = [];
const immutable: string[] = [];

function tmpfs(name: string, size: string): string {
  const dir = join(root, name);
  mkdirSync(dir);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
  mounts.push(dir);
  return dir;
}

/** Writes until the file system refuses: ENOSPC. Returns the filler's path. */
function fillUp(dir: string): string {
  const path = join(dir, 'filler');
  const fd = openSync(path, 'w');
  try {
    for (const size of [1 << 20, 1 << 16, 4096, 512, 1]) {
      const chunk = Buffer.alloc(size, 0x61);
      for (;;) {
        try {
          writeSync(fd, chunk);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOSPC') break;
          throw e;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  return path;
}

afterAll(() => {
  killAll();
  for (const f of immutable) execFileSync('chattr', ['-i', f]);
  for (const m of mounts.reverse()) {
    try {
      execFileSync('umount', ['-l', m]);
    } catch {
      /* already gone */
    }
  }
  rmSync(root, { recursive: true, force: true });
});

const TOKEN = 'faults-token-0001';

async function api(base: string, method: 'GET' | 'POST', path: string, body?: unknown) {
  const res = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: JSON.parse(text) as any };
}

async function until<T>(fn: () => Promise<T>, ok: (v: T) => boolean, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  let v = await fn();
  while (!ok(v) && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 100));
    v = await fn();
  }
  return v;
}

/** A policy body of about 100 KB: many pages to write. */
const bigPolicy = (name: string) => ({ name, allowed_hostnames: Array.from({ length: 4000 }, (_, i) => `host-${i}.full-disk.example.com`) });

/** stderr is one line, names --db and the cause, and carries no stack trace. */
function expectOneLine(stderr: string, cause: RegExp): void {
  const lines = stderr.trim().split('\n');
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/--db/);
  expect(lines[0]).toMatch(cause);
  expect(stderr).not.toMatch(/\n\s+at /);
}

describe('a full database disk', { timeout: 180_000 }, () => {
  it('is a 503 storage_unavailable naming the cause; /readyz says so, /healthz stays up; writes resume with space', async () => {
    const mnt = tmpfs('full', '16m');
    const gw = await startServe(['--db', join(mnt, 'egress.db'), '--api-token', `${TOKEN}:acme`]);
    try {
      expect((await api(gw.apiUrl, 'POST', '/v1/network-policies', { name: 'before' })).status).toBe(200);

      const filler = fillUp(mnt);
      const write = await api(gw.apiUrl, 'POST', '/v1/network-policies', bigPolicy('during'));
      expect(write.body.error?.code, JSON.stringify(write.body)).toBe('storage_unavailable');
      expect(write.status).toBe(503);
      expect(write.body.error.message).toMatch(/the policy store is unavailable: the database or its disk is full \(SQLITE_FULL\)/);
      const ready = await until(
        () => api(gw.apiUrl, 'GET', '/readyz'),
        (r) => r.status === 503,
      );
      expect(ready.body.error).toMatchObject({ code: 'storage_unavailable', status: 503 });
      expect(ready.body.error.message).toMatch(/full \(SQLITE_FULL\)/);
      expect((await api(gw.apiUrl, 'GET', '/healthz')).status).toBe(200);
      const list = await api(gw.apiUrl, 'GET', '/v1/network-policies');
      expect(list.status).toBe(200);
      expect(list.body.network_policies.map((p: { name: string }) => p.name)).toEqual(['before']);
      const metrics = await (await fetch(`${gw.apiUrl}/metrics`)).text();
      expect(metrics).toMatch(/egress_api_storage_unavailable_total\{error="SQLITE_FULL"\} [1-9]/);
      await waitFor(() => /"event":"storage_unavailable","error":"SQLITE_FULL"/.test(gw.out()), 5000, 'the storage_unavailable log line');

      rmSync(filler);
      expect((await api(gw.apiUrl, 'POST', '/v1/network-policies', bigPolicy('after'))).status).toBe(200);
      expect(
        (
          await until(
            () => api(gw.apiUrl, 'GET', '/readyz'),
            (r) => r.status === 200,
          )
        ).body,
      ).toEqual({ status: 'ready' });
    } finally {
      expect(await gw.stop()).toBe(0);
    }
  });
});

describe('a store that cannot be written at start: one line, exit 2', { timeout: 180_000 }, () => {
  it('a database on a read-only mount', async () => {
    const mnt = tmpfs('ro', '8m');
    const db = join(mnt, 'egress.db');
    openStore(db).close();
    execFileSync('mount', ['-o', 'remount,ro', mnt]);
    const serve = spawnCli(['serve', '--db', db, ...LOOPBACK_DOORS]);
    expect(await serve.exited).toBe(2);
    expectOneLine(serve.err(), /read-only/);
    const create = await runCli(['tokens', 'create', '--db', db]);
    expect(create.code).toBe(2);
    expectOneLine(create.stderr, /read-only/);
  });

  it('an immutable database file (chattr +i), even for root', async () => {
    const dir = mkdtempSync(join(root, 'immutable-'));
    const db = join(dir, 'egress.db');
    openStore(db).close();
    execFileSync('chattr', ['+i', db]);
    immutable.push(db);
    const serve = spawnCli(['serve', '--db', db, ...LOOPBACK_DOORS]);
    expect(await serve.exited).toBe(2);
    expectOneLine(serve.err(), /immutable|read-only/);
  });

  it('a new folder on a read-only mount', async () => {
    const mnt = tmpfs('ro-empty', '1m');
    execFileSync('mount', ['-o', 'remount,ro', mnt]);
    const serve = spawnCli(['serve', '--db', join(mnt, 'new', 'deeper', 'egress.db'), ...LOOPBACK_DOORS]);
    expect(await serve.exited).toBe(2);
    expectOneLine(serve.err(), /cannot create the folder .*new\/deeper: .* is on a read-only file system \(EROFS\)/);
    expect(serve.err()).not.toMatch(/ENOENT/);
  });

  it('a new database on a full disk', async () => {
    const mnt = tmpfs('full-new', '1m');
    fillUp(mnt);
    const serve = spawnCli(['serve', '--db', join(mnt, 'egress.db'), ...LOOPBACK_DOORS]);
    expect(await serve.exited).toBe(2);
    expectOneLine(serve.err(), /full/);
  });
});
