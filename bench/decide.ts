/**
 * Decision benchmark: compiled policies of 10, 1,000 and 100,000 entries; hit and miss;
 * cached and uncached; ns per decision (p50/p99 over batches) and decisions per second;
 * compile time and heap per policy; and, in the same run, a naive baseline (one picomatch
 * matcher per entry, tried in turn) for the ratio.
 *
 *   npm run bench:decide            (node --expose-gc --import tsx bench/decide.ts)
 *
 * Timing: sub-microsecond calls cannot be timed one by one (the clock costs ~30 ns), so
 * each sample is a batch of calls timed together; p50/p99 are over batch means.
 */
import { BlockList } from 'node:net';
import picomatch from 'picomatch';
import { PolicyEngine, type Identity } from '../src/policy/engine.js';
import { CompiledPolicy } from '../src/policy/compiler.js';
import { MemorySource } from '../src/policy/memory-source.js';

const SIZES = [10, 1_000, 100_000];
const TOGGLES = { agentGateway: [], mcpGateway: [], mirrors: [] };
const gc = (globalThis as { gc?: () => void }).gc;

// ── deterministic data ─────────────────────────────────────────────────────────
let seed = 0x9e3779b9;
function rnd(): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) / 0x100000000;
}
const ALPHA = 'abcdefghijklmnopqrstuvwxyz0123456789';
function label(min = 3, max = 10): string {
  const n = min + Math.floor(rnd() * (max - min + 1));
  let s = ALPHA[Math.floor(rnd() * 26)]!;
  for (let i = 1; i < n; i++) s += ALPHA[Math.floor(rnd() * ALPHA.length)]!;
  return s;
}
const TLDS = ['com', 'org', 'io', 'net', 'dev', 'co.uk'];
function domain(): string {
  const labels = 1 + Math.floor(rnd() * 3);
  const parts: string[] = [];
  for (let i = 0; i < labels; i++) parts.push(label());
  return `${parts.join('.')}.${TLDS[Math.floor(rnd() * TLDS.length)]}`;
}

interface Dataset {
  entries: string[];
  hits: string[];
  misses: string[];
}

function dataset(n: number): Dataset {
  const entries = new Set<string>();
  while (entries.size < n) entries.add(rnd() < 0.8 ? domain() : `*.${domain()}`);
  const list = [...entries];
  const exact = new Set(list.filter((e) => !e.startsWith('*.')));
  const wild = list.filter((e) => e.startsWith('*.')).map((e) => e.slice(2));
  const hits: string[] = [];
  for (let i = 0; i < 2_000; i++) {
    const e = list[Math.floor(rnd() * list.length)]!;
    hits.push(e.startsWith('*.') ? `${rnd() < 0.5 ? 'api' : `${label()}.${label()}`}.${e.slice(2)}` : e);
  }
  const misses: string[] = [];
  while (misses.length < 2_000) {
    const h = rnd() < 0.5 ? domain() : `www.${list[Math.floor(rnd() * list.length)]!.replace(/^\*\./, 'x.')}z`;
    if (exact.has(h) || wild.some((s) => h.endsWith(`.${s}`))) continue;
    misses.push(h);
  }
  return { entries: list, hits, misses };
}

// ── timing ─────────────────────────────────────────────────────────────────────
interface Stats {
  p50: number;
  p99: number;
  perSecond: number;
}
let sink = 0;

function timeBatches(fn: (host: string) => boolean, hosts: readonly string[], batch: number, samples: number): Stats {
  const per: number[] = [];
  let k = 0;
  // warm-up (JIT)
  for (let i = 0; i < Math.min(20_000, batch * samples); i++) sink += fn(hosts[i % hosts.length]!) ? 1 : 0;
  let total = 0;
  for (let s = 0; s < samples; s++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < batch; i++) {
      sink += fn(hosts[k]!) ? 1 : 0;
      if (++k === hosts.length) k = 0;
    }
    const ns = Number(process.hrtime.bigint() - t0);
    total += ns;
    per.push(ns / batch);
  }
  per.sort((a, b) => a - b);
  return { p50: per[Math.floor(per.length * 0.5)]!, p99: per[Math.min(per.length - 1, Math.floor(per.length * 0.99))]!, perSecond: (batch * samples * 1e9) / total };
}

function naiveMatchers(entries: readonly string[]): Array<(s: string) => boolean> {
  return entries.map((e) => picomatch(e, { nocase: true }));
}

function naiveDecide(matchers: ReadonlyArray<(s: string) => boolean>, host: string): boolean {
  const h = (host.endsWith('.') ? host.slice(0, -1) : host).toLowerCase();
  for (const m of matchers) if (m(h)) return true;
  return false;
}

function heapUsed(): number {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed;
}

// ── run ────────────────────────────────────────────────────────────────────────
const fmtNs = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(1)} ms` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} µs` : `${n.toFixed(n < 10 ? 1 : 0)} ns`);
const fmtRate = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(1)} M/s` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k/s` : `${n.toFixed(0)}/s`);

const decisionRows: string[] = [];
const compileRows: string[] = [];
const started = Date.now();

for (const n of SIZES) {
  const data = dataset(n);
  const egress = { allowed_hostnames: data.entries };

  // compile time (median of a few) and heap of one compiled policy
  const source = new MemorySource();
  const policy = source.putPolicy({ id: 'npol_bench', egress });
  const compileRuns = n >= 100_000 ? 7 : 20;
  const compileTimes: number[] = [];
  gc?.();
  const c0 = process.hrtime.bigint();
  new CompiledPolicy(policy, TOGGLES); // first compile: cold JIT
  const firstCompileMs = Number(process.hrtime.bigint() - c0) / 1e6;
  new CompiledPolicy(policy, TOGGLES);
  for (let i = 0; i < compileRuns; i++) {
    if (n >= 100_000) gc?.(); // the previous run's 10 MB of garbage is not this compile's cost
    const t0 = process.hrtime.bigint();
    new CompiledPolicy(policy, TOGGLES);
    compileTimes.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  compileTimes.sort((a, b) => a - b);
  const before = heapUsed();
  const keep = new CompiledPolicy(policy, TOGGLES);
  const heap = heapUsed() - before;
  sink += keep.nameCount;

  const cached = new PolicyEngine(source, { toggles: TOGGLES, allowPrivate: [], tunnelDomain: 'tunnel.runloop.ai' });
  const uncached = new PolicyEngine(source, { toggles: TOGGLES, allowPrivate: [], tunnelDomain: 'tunnel.runloop.ai', decisionCacheSize: 0 });
  source.putDevbox({ id: 'dbx_bench', network_policy_id: 'npol_bench', addresses: ['10.0.0.2'] });
  const who: Identity = { devboxId: 'dbx_bench', via: 'credentials', source: '10.0.0.2' };

  // sanity: the engine agrees with the data set
  for (const h of data.hits.slice(0, 200)) if (!cached.decide(who, h, 443).allow) throw new Error(`hit denied: ${h}`);
  for (const h of data.misses.slice(0, 200)) if (cached.decide(who, h, 443).allow) throw new Error(`miss allowed: ${h}`);

  // naive baseline
  const nt0 = process.hrtime.bigint();
  const matchers = naiveMatchers(data.entries);
  const naiveCompileMs = Number(process.hrtime.bigint() - nt0) / 1e6;
  const naiveCalls = n >= 100_000 ? 4 : n >= 1_000 ? 400 : 20_000;

  for (const kind of ['hit', 'miss'] as const) {
    const all = kind === 'hit' ? data.hits : data.misses;
    const working = all.slice(0, 1_000); // fits the 4,096-entry cache
    for (const h of working) cached.decide(who, h, 443);
    const c = timeBatches((h) => cached.decide(who, h, 443).allow, working, 1_000, 400);
    const u = timeBatches((h) => uncached.decide(who, h, 443).allow, all, 1_000, 200);
    const naive = timeBatches((h) => naiveDecide(matchers, h), all, 1, naiveCalls);
    for (const [mode, s] of [
      ['cached', c],
      ['uncached', u],
    ] as const) {
      decisionRows.push(`| ${n.toLocaleString('en')} | ${kind} | ${mode} | ${fmtNs(s.p50)} | ${fmtNs(s.p99)} | ${fmtRate(s.perSecond)} | ${fmtNs(naive.p50)} | ${Math.round(naive.p50 / s.p50).toLocaleString('en')}× |`);
    }
  }
  cached.close();
  uncached.close();
  compileRows.push(
    `| ${n.toLocaleString('en')} | ${compileTimes[Math.floor(compileTimes.length / 2)]!.toFixed(2)} ms | ${firstCompileMs.toFixed(2)} ms | ${gc ? (heap < 100 * 1024 ? '< 0.1 MB' : `${(heap / 1024 / 1024).toFixed(2)} MB`) : 'n/a (run with --expose-gc)'} | ${naiveCompileMs.toFixed(1)} ms |`,
  );
}

// IP literals: decided on allowed_cidrs (no per-policy cache: learned and account addresses
// change under them); an address seen before skips parsing and the guardrail ranges.
const ipRows: string[] = [];
{
  const source = new MemorySource();
  const cidrs = Array.from({ length: 10 }, (_, i) => ({ cidr: `${20 + i}.${i}.0.0/16`, ports: [{ port: 443 }] }));
  source.putPolicy({ id: 'npol_ip', egress: { allowed_hostnames: [], allowed_cidrs: cidrs } } as never);
  source.putDevbox({ id: 'dbx_ip', network_policy_id: 'npol_ip', addresses: ['10.0.0.3'] });
  const engine = new PolicyEngine(source, { toggles: TOGGLES, allowPrivate: [], tunnelDomain: 'tunnel.runloop.ai' });
  const who: Identity = { devboxId: 'dbx_ip', via: 'credentials', source: '10.0.0.3' };
  const ip = (hit: boolean, i: number) => (hit ? `${20 + (i % 10)}.${i % 10}.${(i >> 8) & 255}.${i & 255}` : `${100 + (i % 50)}.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
  const naive = new BlockList();
  for (const c of cidrs) naive.addSubnet(c.cidr.split('/')[0]!, Number(c.cidr.split('/')[1]), 'ipv4');
  for (const hit of [true, false]) {
    const seen = Array.from({ length: 1_000 }, (_, i) => ip(hit, i));
    const fresh = Array.from({ length: 200_000 }, (_, i) => ip(hit, 10_000 + i)); // more than the 4,096 remembered
    for (const h of seen) if (engine.decide(who, h, 443).allow !== hit) throw new Error(`ip ${h}: expected ${hit}`);
    const warm = timeBatches((h) => engine.decide(who, h, 443).allow, seen, 1_000, 400);
    const cold = timeBatches((h) => engine.decide(who, h, 443).allow, fresh, 1_000, 150);
    const base = timeBatches((h) => naive.check(h, 'ipv4'), fresh, 1_000, 150);
    for (const [mode, st] of [
      ['seen before', warm],
      ['first time', cold],
    ] as const) {
      ipRows.push(`| ${hit ? 'inside a CIDR' : 'outside'} | ${mode} | ${fmtNs(st.p50)} | ${fmtNs(st.p99)} | ${fmtRate(st.perSecond)} | ${fmtNs(base.p50)} |`);
    }
  }
  engine.close();
}

const out = [
  `Decision benchmark — Node ${process.version}, ${process.platform}/${process.arch}`,
  '',
  '| entries | destination | cache | p50 / decision | p99 / decision | decisions/s | naive picomatch loop p50 | naive ÷ engine |',
  '|---:|---|---|---:|---:|---:|---:|---:|',
  ...decisionRows,
  '',
  '| entries | compile (median) | first compile (cold JIT) | heap per compiled policy | naive: compile picomatch matchers |',
  '|---:|---:|---:|---:|---:|',
  ...compileRows,
  '',
  '| IP literal (10 allowed_cidrs) | address | p50 / decision | p99 / decision | decisions/s | naive: net.BlockList.check p50 |',
  '|---|---|---:|---:|---:|---:|',
  ...ipRows,
  '',
  `(whole run ${((Date.now() - started) / 1000).toFixed(1)} s; sink ${sink % 7})`,
];
process.stdout.write(`${out.join('\n')}\n`);
