/**
 * Issue 24 (docs that are tests): every shell block in README.md and docs/*.md is either run
 * here or says in the doc why it is not (`<!-- not run: reason -->` on the line before it), so
 * a documented command that stops working fails `npm test`. Blocks run here are marked
 * `<!-- run by test/docs/shell-blocks.test.ts -->` and run as written, in bash, with two
 * substitutions, both what a reader does by hand: the docs' default API address
 * 127.0.0.1:8080 is this test's (a free port), and the token the gateway printed is pasted
 * where the README says so. `npm ci` is not run again (the tree under test is installed).
 *
 * docs/deployment.md "Run a fleet" is run the same way, as one shell session in the checkout:
 * its private PostgreSQL, nats-server, two replicas and two sidecars (the `&` lines) are one
 * process group, SIGTERMed and then SIGKILLed after the test. Substituted, as the doc tells a
 * reader to: its fixed ports by free ones, `/var/lib/` by this test's temporary folder. The
 * machine has no internet, so the environment (not the doc) points example.com at an origin
 * this test runs: `EGRESS_UPSTREAM_DNS` is a test resolver answering example.com with a
 * 127.x.y.z address whose port 80 the origin holds, and `EGRESS_ALLOW_PRIVATE` admits that one address.
 */
import { chmodSync, existsSync, readFileSync, readdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, loopbackPorts } from '../support/cli-gateway.js';
import { startDnsUpstream, type DnsUpstream } from '../support/dns-upstream.js';
import { freePort } from '../support/nats.js';
import { groupAlive, killTree, runTree, spawnTree } from '../support/processes.js';
import { tempDir } from '../support/temp.js';
import { eventually, waitFor } from '../support/wait.js';

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
    expect(BLOCKS.filter((b) => b.mark === 'run').map((b) => `${b.file}:${b.line}`)).toEqual([...runBlocks('README.md'), ...runBlocks('docs/api.md'), ...runBlocks('docs/deployment.md')].map((b) => `${b.file}:${b.line}`));
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

/** The newest PostgreSQL server binaries' folder Debian installed (what the doc's PGBIN names). */
function postgresBin(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))) : [];
  versions.sort((a, b) => Number(b) - Number(a));
  if (versions.length === 0) throw new Error('PostgreSQL server binaries not found under /usr/lib/postgresql: install the Debian package `postgresql`');
  return join(root, versions[0]!, 'bin');
}

/** `n` distinct free loopback ports. */
async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

describe('docs/deployment.md "Run a fleet": PostgreSQL, NATS, two replicas, two sidecars, a request through each', { timeout: 360_000 }, () => {
  const blocks = runBlocks('docs/deployment.md');
  /** The fixed ports the doc uses, each replaced by a free one. */
  const DOC_PORTS = [5432, 4222, 8080, 8081, 9080, 9081, 3128, 3129];
  let fleet: ReturnType<typeof spawnTree> | null = null;
  let origin: Server | null = null;
  let dns: DnsUpstream | null = null;
  let out = '';
  let err = '';
  let originHits = 0;
  /** Where example.com points: a random 127.x.y.z (its port 80 is this test's, whatever else holds 127.0.0.1:80). */
  const originIp = `127.${1 + Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 256)}.${1 + Math.floor(Math.random() * 250)}`;

  beforeAll(async () => {
    origin = createServer((req, res) => {
      if (req.headers.host === 'example.com') originHits++;
      res.end('the origin behind example.com');
    });
    await new Promise<void>((resolve, reject) => {
      origin!.once('error', reject);
      origin!.listen(80, originIp, resolve);
    });
    dns = await startDnsUpstream({ records: { 'example.com': [{ type: 'A', data: originIp, ttl: 60 }] } });
  });

  afterAll(async () => {
    if (fleet?.pid !== undefined) {
      // SIGTERM first: PostgreSQL and the gateways shut down cleanly (no shared memory left behind).
      killTree(fleet, 'SIGTERM');
      const pgid = fleet.pid;
      await eventually(() => !groupAlive(pgid), 30_000, 100);
      killTree(fleet);
    }
    await new Promise<void>((r) => (origin ? origin.close(() => r()) : r()));
    await dns?.close();
  });

  it('runs as written (ports and data folders substituted): the policy id captured, a devbox on each host, allowed 200 and denied 403 through each sidecar', async () => {
    expect(blocks).toHaveLength(1);
    const ports = await freePorts(DOC_PORTS.length);
    const dir = tempDir('fleet-docs');
    // The private cluster's folder is made by the doc (owned by postgres) inside this one: postgres must get through it.
    chmodSync(dir, 0o755);
    // PGBIN: the doc names Debian 12's PostgreSQL 15; a reader on another release names theirs.
    expect(blocks[0]!.text).toContain('PGBIN=/usr/lib/postgresql/15/bin;');
    let text = blocks[0]!.text.replace('PGBIN=/usr/lib/postgresql/15/bin;', `PGBIN=${postgresBin()};`).replaceAll('/var/lib/', `${dir}/`);
    DOC_PORTS.forEach((p, i) => {
      text = text.replace(new RegExp(`\\b${p}\\b`, 'g'), String(ports[i]));
    });
    for (const p of DOC_PORTS) expect(text).not.toMatch(new RegExp(`\\b${p}\\b`));
    // What a reader would look at afterwards, then the shell stays (as the reader's does) until the test ends it.
    const epilogue = ['echo', 'echo "captured POL=$POL DBX1=$DBX1 DBX2=$DBX2"', 'echo fleet-walkthrough-done', 'wait'].join('\n');
    const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('EGRESS_')));
    fleet = spawnTree('bash', ['-euo', 'pipefail', '-c', `${text}\n${epilogue}`], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...env, EGRESS_UPSTREAM_DNS: `127.0.0.1:${dns!.port}`, EGRESS_ALLOW_PRIVATE: `${originIp}/32` },
    });
    fleet.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    fleet.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => fleet!.once('exit', (code) => r(code)));
    let code: number | null | undefined;
    void exited.then((c) => (code = c));
    // A process the page started in the background that fails (its `until curl` would wait for it forever) ends the wait too.
    const fatal = () => /"level":60|^egress-gateway: /m.exec(`${out}\n${err}`);
    await waitFor(() => out.includes('fleet-walkthrough-done') || code !== undefined || fatal(), 300_000, 'the fleet walk-through to finish');
    expect(fatal(), `a process the page started failed:\n${err.slice(-4000)}\n${out.slice(-4000)}`).toBeNull();
    expect(code, `the walk-through stopped (exit ${code}):\n${err.slice(-4000)}\n${out.slice(-4000)}`).toBeUndefined();

    const lines = out.split('\n');
    const captured = /^captured POL=(\S*) DBX1=([^:\s]*):\S+ DBX2=([^:\s]*):\S+$/m.exec(out);
    expect(captured, out.slice(-4000)).not.toBeNull();
    const [, pol, dbx1, dbx2] = captured!;
    expect(pol).toMatch(/^npol_/);
    expect(dbx1).toMatch(/^dbx_/);
    expect(dbx2).toMatch(/^dbx_/);
    // The four proxied requests, in the doc's order: allowed and denied through h1, then through h2.
    const answers = lines.filter((l) => /^\d{3} /.test(l) || /^\d{3}$/.test(l)).map((l) => l.trim());
    expect(answers).toEqual(['200', '403 not_allowlisted', '200', '403 not_allowlisted']);
    // The allowed ones really reached the origin, through the sidecars.
    expect(originHits).toBe(2);
    expect(lines.some((l) => /^\{"status":"ok".*"host_id":"h1"/.test(l))).toBe(true);

    // A devbox on each host: each sidecar serves its own and not the other's.
    const get = (port: number, id: string) => fetch(`http://127.0.0.1:${port}/v1/devboxes/${id}`, { headers: { authorization: 'Bearer ops-token' } }).then((r) => r.status);
    const [h1Api, h2Api] = [ports[DOC_PORTS.indexOf(9080)]!, ports[DOC_PORTS.indexOf(9081)]!];
    expect(await get(h1Api, dbx1!)).toBe(200);
    expect(await get(h2Api, dbx2!)).toBe(200);
    expect(await get(h1Api, dbx2!)).toBe(404);
    expect(await get(h2Api, dbx1!)).toBe(404);
  });
});
