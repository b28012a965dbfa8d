/**
 * Issue 24 (docs that are tests): every shell block in README.md and docs/*.md is either run
 * here or says in the doc why it is not (`<!-- not run: reason -->` on the line before it), so
 * a documented command that stops working fails `npm test`. Blocks run here are marked
 * `<!-- run by test/docs/shell-blocks.test.ts -->` and run as written, in bash, with two
 * substitutions, both what a reader does by hand: the docs' default API address
 * 127.0.0.1:8080 is this test's (a free port), and the token the gateway printed is pasted
 * where the README says so. `npm ci` is not run again (the tree under test is installed).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, loopbackPorts } from '../support/cli-gateway.js';
import { killTree, runTree, spawnTree } from '../support/processes.js';
import { tempDir } from '../support/temp.js';
import { waitFor } from '../support/wait.js';

interface Block {
  file: string;
  line: number;
  text: string;
  mark: 'run' | 'not run' | null;
  reason: string;
}

const RUN_MARK = /^<!-- run by test\/docs\/shell-blocks\.test\.ts\b.*-->$/;
const NOT_RUN_MARK = /^<!-- not run: (.+?) -->$/;

/** The fenced sh/bash/shell blocks of a Markdown file, with the mark on the line before each (blank lines skipped). */
function shellBlocks(file: string): Block[] {
  const lines = readFileSync(join(ROOT, file), 'utf8').split('\n');
  const out: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const fence = /^(\s*)```(sh|bash|shell)\s*$/.exec(lines[i]!);
    if (!fence) continue;
    const indent = fence[1]!.length;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !/^\s*```\s*$/.test(lines[j]!); j++) body.push(lines[j]!.slice(indent));
    let k = i - 1;
    while (k >= 0 && lines[k]!.trim() === '') k--;
    const before = (lines[k] ?? '').trim();
    const notRun = NOT_RUN_MARK.exec(before);
    out.push({ file, line: i + 1, text: body.join('\n'), mark: RUN_MARK.test(before) ? 'run' : notRun ? 'not run' : null, reason: notRun?.[1] ?? '' });
    i = j;
  }
  return out;
}

const DOCS = [
  'README.md',
  ...readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];
const BLOCKS = DOCS.flatMap(shellBlocks);
const runBlocks = (file: string) => BLOCKS.filter((b) => b.file === file && b.mark === 'run');

describe('every shell block in the docs', () => {
  it('is run by this file, or says why not', () => {
    const unmarked = BLOCKS.filter((b) => b.mark === null).map((b) => `${b.file}:${b.line}`);
    expect(unmarked, 'mark each with <!-- run by test/docs/shell-blocks.test.ts --> (and run it here) or <!-- not run: reason -->').toEqual([]);
    for (const b of BLOCKS.filter((x) => x.mark === 'not run')) expect(b.reason.length, `${b.file}:${b.line}`).toBeGreaterThan(10);
  });

  it('every block marked as run here is one this file runs', () => {
    expect(BLOCKS.filter((b) => b.mark === 'run').map((b) => `${b.file}:${b.line}`)).toEqual([...runBlocks('README.md'), ...runBlocks('docs/api.md')].map((b) => `${b.file}:${b.line}`));
  });
});

describe('README quick start, then the API examples of README.md and docs/api.md', { timeout: 180_000 }, () => {
  const [start, example] = runBlocks('README.md');
  let apiPort = 0;
  let token = '';
  let server: ReturnType<typeof spawnTree> | null = null;
  let stderr = '';
  /** Runs a block in bash (exit on the first failing command) against this test's gateway. */
  const bash = (text: string, env: Record<string, string> = {}) => runTree('bash', ['-euo', 'pipefail', '-c', text.replaceAll('127.0.0.1:8080', `127.0.0.1:${apiPort}`)], { cwd: tempDir('docs-sh'), env: { ...process.env, ...env }, timeoutMs: 60_000 });

  beforeAll(async () => {
    const { ports } = await loopbackPorts();
    apiPort = ports.api;
    // The quick start, in the checkout: `npm start` on the defaults but for the ports and db, from the environment.
    const command = start!.text.replace(/^npm ci && /m, '');
    expect(command).toMatch(/^npm start\b/);
    server = spawnTree('bash', ['-c', command], {
      cwd: ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: {
        ...process.env,
        EGRESS_CONFIG: '',
        EGRESS_API_TOKENS: '',
        EGRESS_API: `127.0.0.1:${ports.api}`,
        EGRESS_HTTP_PROXY: `127.0.0.1:${ports.proxy}`,
        EGRESS_SOCKS: `127.0.0.1:${ports.socks}`,
        EGRESS_DNS: `127.0.0.1:${ports.dns}`,
        EGRESS_DB: join(tempDir('docs-db'), 'egress.db'),
        EGRESS_UPSTREAM_DNS: '127.0.0.1:9',
      },
    });
    server.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    // What the README tells the reader to copy: the banner's `export RUNLOOP_API_KEY=…` line.
    token = await waitFor(() => /export RUNLOOP_API_KEY=(\S+)/.exec(stderr)?.[1], 90_000, 'the first-start token from npm start');
    await waitFor(async () => (await fetch(`http://127.0.0.1:${apiPort}/healthz`).catch(() => null))?.ok === true, 30_000, 'the gateway to answer');
  });

  afterAll(() => {
    if (server) killTree(server);
  });

  it('README: the printed token, then the curl example, creates the policy', async () => {
    expect(example!.text).toContain('export RUNLOOP_API_KEY=…');
    const r = await bash(example!.text.replace('export RUNLOOP_API_KEY=…', `export RUNLOOP_API_KEY=${token}`));
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ id: expect.stringMatching(/^npol_/), name: 'registries' });
    expect(r.stdout).toContain('"*.pythonhosted.org"');
  });

  it('docs/api.md: the policy, devbox, check, report-mode, blueprint and agent-resource examples, in order', async () => {
    const blocks = runBlocks('docs/api.md');
    expect(blocks).toHaveLength(3);
    const r = await bash(blocks.map((b) => b.text).join('\n'), { RUNLOOP_API_KEY: token });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('"decision":"allow"');
    expect(r.stdout).toContain('"matched":"*.npmjs.org"');
    expect(r.stdout).toMatch(/"blueprint_id":"bpt_/);
    expect(r.stdout).toMatch(/"token":"egw_gt_[^"]+","url":"http:\/\/127\.0\.0\.1:8090"/);
    expect(r.stdout).not.toContain('sk-ant-rotated');
  });
});
