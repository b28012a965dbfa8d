/**
 * `egress-gateway serve` as a child process (node --import tsx src/main.ts), on loopback
 * port 0 for every door: waits for the start-up line, reads the API port and any printed
 * first-start token, and stops with SIGTERM. Each is its own process group
 * (test/support/processes.ts): killed with its workers and API thread.
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { killTree, spawnTree, stopTree } from './processes.js';
import { waitFor } from './wait.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export const LOOPBACK_DOORS = ['--api', '127.0.0.1:0', '--http-proxy', '127.0.0.1:0', '--socks', '127.0.0.1:0', '--dns', 'off', '--agent-gateway', 'off', '--mcp-hub', 'off', '--upstream-dns', '127.0.0.1:9'];

export interface ServeProcess {
  child: ChildProcess;
  exited: Promise<number | null>;
  out(): string;
  err(): string;
}

export interface RunningServe extends ServeProcess {
  apiUrl: string;
  /** Waits for the token serve prints on first start (stderr, right after the listening line). */
  firstStartToken(): Promise<string>;
  /** The first-start token if printed by now. */
  printedToken(): string | null;
  stop(): Promise<number | null>;
}

const children = new Set<ChildProcess>();

/** Spawns serve (or any command); the caller waits for what it expects. */
export function spawnCli(args: string[], env: Record<string, string> = {}): ServeProcess {
  const child = spawnTree(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], {
    cwd: ROOT,
    env: { ...process.env, EGRESS_API_TOKENS: '', EGRESS_CONFIG: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) =>
    child.on('exit', (code) => {
      children.delete(child);
      r(code);
    }),
  );
  return { child, exited, out: () => out, err: () => err };
}

/** Starts serve and waits until it listens (or fails: the error names its stderr). */
export async function startServe(args: string[], env: Record<string, string> = {}, waitMs = 90_000): Promise<RunningServe> {
  const p = spawnCli(['serve', ...LOOPBACK_DOORS, ...args], env);
  let exitCode: number | null | undefined;
  void p.exited.then((c) => (exitCode = c));
  await waitFor(() => p.out().includes('egress-gateway listening') || exitCode !== undefined, waitMs, 'serve to listen');
  if (exitCode !== undefined) throw new Error(`serve exited ${exitCode}: ${p.err()}`);
  // The listening line, not the start-up line (which shows the configured api, port 0).
  const listening = p
    .out()
    .split('\n')
    .find((l) => l.includes('egress-gateway listening'))!;
  const port = /"api":"127\.0\.0\.1:(\d+)"/.exec(listening)![1];
  const printedToken = () => /export RUNLOOP_API_KEY=(\S+)/.exec(p.err())?.[1] ?? null;
  return {
    ...p,
    apiUrl: `http://127.0.0.1:${port}`,
    printedToken,
    async firstStartToken() {
      await waitFor(() => printedToken() !== null, 10_000, 'the first-start token');
      return printedToken()!;
    },
    async stop() {
      return (await stopTree(p.child)).code;
    },
  };
}

/** Kills what is left, each with its process tree (afterAll). */
export function killAll(): void {
  for (const c of children) killTree(c);
}
