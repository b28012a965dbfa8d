/** Runs the real CLI (src/main.ts through tsx) as a child process, killed with its tree past 30 s. */
import { fileURLToPath } from 'node:url';
import { runTree } from './processes.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const r = await runTree(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], { cwd: ROOT, env: { ...process.env, RUNLOOP_API_KEY: '', EGRESS_TOKEN: '', EGRESS_CONFIG: '', ...env }, timeoutMs: 30_000 });
  return { code: r.code, stdout: r.stdout, stderr: r.stderr };
}
