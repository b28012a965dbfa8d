/**
 * `npm run bench`: runs every benchmark script in bench/ (each in its own Node process, so
 * one's heap and JIT state don't colour another's), collects the markdown tables each
 * prints on stdout, and prints them under one summary table, with the date and the machine
 * (cores, CPU, Node version). With `--write` it also replaces the tracked bench/RESULTS.md
 * (keeping its hand-kept "Earlier runs" section); without it the file is left alone.
 *
 *   npm run bench                       every bench/*.ts except this one and _*.ts helpers
 *   npm run bench -- decide dns         only the named ones
 *   npm run bench -- --write            and write bench/RESULTS.md
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, totalmem, platform, release } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { markdownTable } from '../src/cli/bench/stats.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = dirname(HERE);
const PREFERRED = ['decide', 'dns', 'proxy'];
const TIMEOUT_MS = 15 * 60_000;
/** The hand-kept tail of RESULTS.md (runs quoted in docs/) that `--write` carries over. */
const KEPT_SECTION = '## Earlier runs';

interface Run {
  name: string;
  code: number | null;
  seconds: number;
  stdout: string;
  stderr: string;
}

function scripts(only: string[]): string[] {
  const all = readdirSync(HERE)
    .filter((f) => f.endsWith('.ts') && f !== 'all.ts' && !f.startsWith('_') && !f.endsWith('.d.ts'))
    .map((f) => f.slice(0, -3));
  const ordered = [...PREFERRED.filter((n) => all.includes(n)), ...all.filter((n) => !PREFERRED.includes(n)).sort()];
  if (only.length === 0) return ordered;
  for (const n of only) if (!all.includes(n)) throw new Error(`no bench/${n}.ts (have: ${all.join(', ')})`);
  return ordered.filter((n) => only.includes(n));
}

function runOne(name: string): Promise<Run> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', join(HERE, `${name}.ts`)], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, EGRESS_BENCH_MARKDOWN: '1' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      process.stderr.write(d); // progress stays visible
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ name, code, seconds: (performance.now() - t0) / 1000, stdout, stderr });
    });
  });
}

/** Markdown headings and tables from a script's stdout, in order; other lines are dropped. */
export function extractMarkdown(stdout: string): { text: string; tables: number } {
  const out: string[] = [];
  let tables = 0;
  let inTable = false;
  for (const raw of stdout.split('\n')) {
    const line = raw.trimEnd();
    if (line.startsWith('|')) {
      if (!inTable) {
        tables++;
        if (out.length > 0 && out.at(-1) !== '') out.push('');
      }
      inTable = true;
      out.push(line);
      continue;
    }
    if (inTable) out.push('');
    inTable = false;
    if (/^#{1,6} /.test(line)) out.push(`###${line.replace(/^#+/, '')}`, '');
  }
  return {
    text: out
      .join('\n')
      .replace(/\n{3,}/g, '\n\n')
      .trim(),
    tables,
  };
}

/** The "Earlier runs" section of an existing RESULTS.md, or '' when there is none. */
export function keptTail(existing: string): string {
  const at = existing.indexOf(`\n${KEPT_SECTION}`);
  return at < 0 ? '' : existing.slice(at + 1).trimEnd();
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const write = args.includes('--write');
  const names = scripts(args.filter((a) => a !== '--write'));
  const runs: Run[] = [];
  for (const name of names) {
    process.stderr.write(`\n== bench/${name}.ts\n`);
    runs.push(await runOne(name));
  }
  const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU';
  const sections: string[] = [];
  const summary: string[][] = [];
  for (const r of runs) {
    const md = extractMarkdown(r.stdout);
    const status = r.code === 0 ? 'ok' : r.code === null ? 'killed (time-out)' : `failed (exit ${r.code})`;
    summary.push([`[${r.name}](#${r.name})`, status, String(md.tables), r.seconds.toFixed(1)]);
    const body = md.tables > 0 ? md.text : `No table printed. Last lines of output:\n\n\`\`\`\n${(r.stdout + r.stderr).trim().split('\n').slice(-15).join('\n')}\n\`\`\``;
    const failure = r.code === 0 ? '' : `\n\n**${status}.** Last lines of stderr:\n\n\`\`\`\n${r.stderr.trim().split('\n').slice(-15).join('\n')}\n\`\`\``;
    sections.push(`## ${r.name}\n\n\`npm run bench:${r.name}\` (bench/${r.name}.ts)\n\n${body}${failure}`);
  }
  const text = [
    '# Benchmark results',
    '',
    `Written by \`npm run bench -- --write\` (bench/all.ts) on ${new Date().toISOString()}.`,
    '',
    `Machine: ${availableParallelism()} cores (\`nproc\`), ${cpu}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ${platform()} ${release()}; Node ${process.version}.`,
    '',
    markdownTable(['benchmark', 'status', 'tables', 'seconds'], summary),
    '',
    ...sections.flatMap((s) => [s, '']),
  ].join('\n');
  const out = join(HERE, 'RESULTS.md');
  if (write) {
    const tail = existsSync(out) ? keptTail(readFileSync(out, 'utf8')) : '';
    writeFileSync(out, tail ? `${text.trimEnd()}\n\n${tail}\n` : text);
    process.stderr.write(`\nwrote ${out}\n`);
  } else {
    process.stdout.write(`${text}\n`);
    process.stderr.write(`\n${out} not changed (npm run bench -- --write replaces it)\n`);
  }
  if (runs.some((r) => r.code !== 0)) process.exitCode = 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((e: unknown) => {
    process.stderr.write(`bench/all: ${(e as Error).message}\n`);
    process.exit(1);
  });
}
