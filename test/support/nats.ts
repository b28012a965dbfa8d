/**
 * A real nats-server with JetStream for the fleet tests (Debian package `nats-server`):
 * `nats-server -js -sd DIR -a 127.0.0.1 -p PORT` on a free loopback port, its store in a
 * temporary folder. `kill()` is kill -9; `start()` again brings it back on the same port and
 * store, as a restarted server would come back.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { killTree, spawnTree } from './processes.js';
import { tempDir } from './temp.js';

const CANDIDATES = ['/usr/bin/nats-server', '/usr/sbin/nats-server', '/usr/local/bin/nats-server'];

function binary(): string {
  const found = CANDIDATES.find((p) => existsSync(p)) ?? (spawnSync('sh', ['-c', 'command -v nats-server']).stdout?.toString().trim() || null);
  if (!found) throw new Error('nats-server not found: install the Debian package nats-server (apt-get install nats-server)');
  return found;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface NatsServer {
  url: string;
  port: number;
  dir: string;
  /** Starts it (again), resolving once it accepts clients. */
  start(): Promise<void>;
  /** kill -9. */
  kill(): Promise<void>;
  running(): boolean;
  /** Stops it and removes its store. */
  close(): Promise<void>;
  log(): string;
}

export async function startNats(opts: { config?: string } = {}): Promise<NatsServer> {
  const bin = binary();
  const port = await freePort();
  const dir = tempDir('nats');
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let out = '';
  const server: NatsServer = {
    url: `nats://127.0.0.1:${port}`,
    port,
    dir,
    async start() {
      const args = ['-js', '-sd', join(dir, 'js'), '-a', '127.0.0.1', '-p', String(port), ...(opts.config ? ['-c', opts.config] : [])];
      const c = spawnTree(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      child = c;
      c.stdout!.on('data', (d) => (out += d));
      c.stderr!.on('data', (d) => (out += d));
      exited = new Promise((r) => c.on('exit', () => r()));
      const end = Date.now() + 20_000;
      while (!/Server is ready/.test(out)) {
        if (c.exitCode !== null) throw new Error(`nats-server exited ${c.exitCode}: ${out}`);
        if (Date.now() > end) throw new Error(`nats-server did not start within 20 s: ${out}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async kill() {
      if (child && child.exitCode === null) {
        killTree(child);
        await exited;
      }
      child = null;
      out = '';
    },
    running: () => child !== null && child.exitCode === null,
    async close() {
      await server.kill();
      rmSync(dir, { recursive: true, force: true });
    },
    log: () => out,
  };
  await server.start();
  return server;
}
