/** A real `serve` process for the policy-lifecycle tests: started through the CLI, logs captured, its own process group. */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { spawnTree, stopTree } from './processes.js';
import { waitFor } from './wait.js';

const MAIN = join(process.cwd(), 'src', 'main.ts');

/** Every door on a free port, the agent gateway and MCP hub off (no fixed ports in parallel tests). */
const DOORS_ON_PORT_0 = ['--api', '127.0.0.1:0', '--http-proxy', '127.0.0.1:0', '--socks', '127.0.0.1:0', '--dns', '127.0.0.1:0', '--agent-gateway', 'off', '--mcp-hub', 'off'];

export interface Served {
  child: ChildProcess;
  ports: Record<string, number>;
  out(): string;
  stop(): Promise<number | null>;
}

/** `egress-gateway serve` on loopback port 0 with these extra arguments; resolves once it listens. */
export async function serve(args: string[]): Promise<Served> {
  const child = spawnTree(process.execPath, ['--import', 'tsx', MAIN, 'serve', ...DOORS_ON_PORT_0, '--allow-private', '127.0.0.0/8', '--log-level', 'info', '--shutdown-grace-ms', '200', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const line = await waitFor(
    () => {
      if (child.exitCode !== null) throw new Error(`serve exited: ${err}`);
      return out.split('\n').find((l) => l.includes('"event":"listening"'));
    },
    45_000,
    'serve to listen',
  );
  const listeners = JSON.parse(line).listeners as Record<string, string>;
  const ports = Object.fromEntries(Object.entries(listeners).map(([k, v]) => [k, Number(v.slice(v.lastIndexOf(':') + 1))]));
  return {
    child,
    ports,
    out: () => out,
    stop: async () => (await stopTree(child)).code,
  };
}
