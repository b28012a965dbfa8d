/**
 * npm run fuzz [-- --seconds N] [--runs N] [--target NAME …] [--merge]
 *
 * Runs each fuzz target (test/fuzz/targets/<name>.ts) under Jazzer.js (libFuzzer,
 * coverage-guided: the gateway's src/ is instrumented), one after the other, for a bounded
 * time (default 60 s each) or number of inputs. Seeds come from test/fuzz/corpus/<name>/;
 * new inputs go to .fuzz/<name>/corpus/ (not committed). --merge then minimises both into
 * the committed corpus (libFuzzer -merge=1: the fewest inputs that keep every feature seen),
 * keeping the named inputs (seed-*, finding-*, edge-*) as they are. A crash, a broken property or a
 * slow input stops that target, leaves the input in .fuzz/<name>/ and makes the run fail.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jazzerCompat } from './support/glibc-compat.js';
import { TARGETS } from './targets.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

interface Args {
  seconds: number;
  runs: number | null;
  targets: string[];
  merge: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { seconds: 60, runs: null, targets: [], merge: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = () => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${k} needs a value`);
      return x;
    };
    if (k === '--seconds') a.seconds = Number(v());
    else if (k === '--runs') a.runs = Number(v());
    else if (k === '--target') a.targets.push(...v().split(','));
    else if (k === '--merge') a.merge = true;
    else throw new Error(`unknown argument ${k} (use --seconds N, --runs N, --target NAME, --merge)`);
  }
  for (const t of a.targets) if (!(t in TARGETS)) throw new Error(`unknown target ${t}; known: ${Object.keys(TARGETS).join(', ')}`);
  if (a.targets.length === 0) a.targets = Object.keys(TARGETS);
  return a;
}

interface Result {
  target: string;
  ok: boolean;
  runs: number;
  seconds: number;
  cov: number;
  ft: number;
  corpus: number;
  finding: string | null;
}

function runTarget(name: string, args: Args, env: Record<string, string>): Promise<Result> {
  const spec = TARGETS[name]!;
  const work = join(root, '.fuzz', name);
  const workCorpus = join(work, 'corpus');
  const seeds = join(root, 'test', 'fuzz', 'corpus', name);
  mkdirSync(workCorpus, { recursive: true });
  mkdirSync(seeds, { recursive: true });
  const cli = createRequire(import.meta.url).resolve('@jazzer.js/core/dist/cli.js');
  const libfuzzer = [`-max_len=${spec.maxLen}`, `-artifact_prefix=${work}/`, `-timeout=${Math.ceil(spec.timeoutMs / 1000)}`, '-print_final_stats=1', `-max_total_time=${args.seconds}`];
  if (args.runs !== null) libfuzzer.push(`-runs=${args.runs}`);
  if (spec.dict) libfuzzer.push(`-dict=${join(root, 'test', 'fuzz', 'dict', spec.dict)}`);
  const argv = [
    '--import',
    'tsx',
    cli,
    join('test', 'fuzz', 'targets', name), // jazzer adds .js; tsx resolves it to the .ts file
    workCorpus,
    seeds,
    '--sync',
    '-i',
    `${join(root, 'src')}/`,
    '-e',
    'node_modules',
    '--disableBugDetectors',
    '.*',
    `--timeout=${spec.timeoutMs}`,
    '--',
    ...libfuzzer,
  ];
  console.log(`\n== fuzz ${name}: ${args.runs !== null ? `${args.runs} inputs, ` : ''}at most ${args.seconds} s`);
  return new Promise((finish) => {
    const child = spawn(process.execPath, argv, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'pipe'] });
    let tail = '';
    let pending = '';
    let last = '';
    let summaryLine = '';
    child.stderr.on('data', (d: Buffer) => {
      const s = pending + d.toString();
      tail = (tail + d.toString()).slice(-20000);
      const lines = s.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        if (/^#\d+\s.*cov: /.test(line)) last = line;
        if (/^Done \d+ runs/.test(line)) summaryLine = line;
        if (/^#\d+\s+(INITED|DONE|pulse)|^Done |==\d+==|Error|Violation|took/.test(line)) process.stderr.write(line + '\n');
      }
    });
    child.on('close', (code) => {
      const stat = (k: string) => Number(new RegExp(`${k}: (\\d+)`).exec(last)?.[1] ?? 0);
      const runs = Number(/^#(\d+)/.exec(last)?.[1] ?? 0);
      const summary = /Done (\d+) runs in (\d+) second/.exec(summaryLine);
      const finding = code === 0 ? null : (/(PropertyViolation[^\n]*|Error[^\n]*|==\d+== [^\n]*)/.exec(tail)?.[1] ?? `exit ${code}`);
      finish({
        target: name,
        ok: code === 0,
        runs: summary ? Number(summary[1]) : runs,
        seconds: summary ? Number(summary[2]) : 0,
        cov: stat('cov'),
        ft: stat('ft'),
        corpus: readdirSync(workCorpus).length,
        finding,
      });
    });
  });
}

/** Named corpus inputs, kept as they are by --merge. */
const NAMED = /^(seed|finding|edge)-/;

/**
 * Minimises the work corpus and the committed one into the committed one (libFuzzer
 * -merge=1). The merge re-runs jazzer in child processes, which need tsx too (NODE_OPTIONS).
 */
function merge(name: string, env: Record<string, string>): Promise<number> {
  const work = join(root, '.fuzz', name);
  const seeds = join(root, 'test', 'fuzz', 'corpus', name);
  const out = join(work, 'merged');
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const cli = createRequire(import.meta.url).resolve('@jazzer.js/core/dist/cli.js');
  const argv = [cli, join('test', 'fuzz', 'targets', name), out, join(work, 'corpus'), seeds, '--sync', '-i', `${join(root, 'src')}/`, '-e', 'node_modules', '--disableBugDetectors', '.*', '--', '-merge=1'];
  const nodeOptions = `${process.env.NODE_OPTIONS ?? ''} --import tsx`.trim();
  return new Promise((finish, fail) => {
    const child = spawn(process.execPath, argv, { cwd: root, env: { ...process.env, ...env, NODE_OPTIONS: nodeOptions }, stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('close', (code) => {
      if (code !== 0) return fail(new Error(`merge of ${name} failed (exit ${code})`));
      for (const f of readdirSync(seeds)) if (!NAMED.test(f)) rmSync(join(seeds, f));
      const kept = readdirSync(out);
      for (const f of kept) copyFileSync(join(out, f), join(seeds, f));
      finish(kept.length);
    });
  });
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const env = jazzerCompat(join(root, 'node_modules', '.cache', 'jazzer-compat'));
  const results: Result[] = [];
  for (const t of args.targets) {
    const r = await runTarget(t, args, env);
    results.push(r);
    if (args.merge && r.ok) console.log(`test/fuzz/corpus/${t}/: ${await merge(t, env)} inputs keep all coverage (plus the named ones)`);
  }
  console.log('\ntarget               inputs     s      cov     ft  corpus  result');
  for (const r of results) {
    console.log(`${r.target.padEnd(18)} ${String(r.runs).padStart(9)} ${String(r.seconds).padStart(5)} ${String(r.cov).padStart(8)} ${String(r.ft).padStart(6)} ${String(r.corpus).padStart(7)}  ${r.ok ? 'ok' : `FINDING: ${r.finding} (input in .fuzz/${r.target}/)`}`);
  }
  writeFileSync(join(root, '.fuzz', `results-${Date.now()}.json`), JSON.stringify(results, null, 2));
  if (results.some((r) => !r.ok)) process.exitCode = 1;
}

await main();
