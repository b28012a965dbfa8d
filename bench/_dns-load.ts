/**
 * Load clients for bench/dns.ts: bench/dnsload.c (compiled here with the system C compiler)
 * and, when it cannot be built, a Node client in this process. Both send queries named by a
 * template from the devbox address and report throughput, latency percentiles and answers
 * per rcode. Also a one-query probe, to check a server answers as expected before it is
 * measured.
 */
import dgram from 'node:dgram';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import dnsPacket from 'dns-packet';

export const DEVBOX = '127.0.0.2';

/** Query names: `template` with its one %u replaced by the query's number modulo `cycle` (0: never repeats). */
export interface QuerySet {
  template: string;
  cycle: number;
}

export interface LoadOptions {
  seconds: number;
  maxQueries: number;
  /** Queries per second on a schedule; 0: closed loop with `window` in flight. */
  rate: number;
  window: number;
}

export interface LoadResult {
  sent: number;
  answered: number;
  lost: number;
  /** Start to the last answer: a wait for lost queries at the end is not counted. */
  seconds: number;
  qps: number;
  p50Ms: number;
  p99Ms: number;
  /** Answers per RCODE (0..15). */
  rcodes: number[];
  /** Answers with ANCOUNT > 0. */
  withAnswer: number;
}

export interface LoadClient {
  /** For the output header. */
  describe: string;
  run(port: number, queries: QuerySet, opts: LoadOptions): Promise<LoadResult>;
  close(): void;
}

// ── the C client ──────────────────────────────────────────────────────────────────────

/** Compiles bench/dnsload.c into a temp dir; the error text when no compiler works. */
export function compileDnsload(): { path: string } | { error: string } {
  const src = join(dirname(fileURLToPath(import.meta.url)), 'dnsload.c');
  const dir = mkdtempSync(join(tmpdir(), 'egw-dnsload-'));
  const out = join(dir, 'dnsload');
  const errors: string[] = [];
  for (const cc of ['cc', 'gcc']) {
    try {
      execFileSync(cc, ['-O2', '-o', out, src], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000 });
      return { path: out };
    } catch (e) {
      const err = e as NodeJS.ErrnoException & { stderr?: Buffer };
      errors.push(`${cc}: ${err.code === 'ENOENT' ? 'not found' : (err.stderr?.toString().trim().split('\n')[0] ?? err.message)}`);
    }
  }
  rmSync(dir, { recursive: true, force: true });
  return { error: errors.join('; ') };
}

interface DnsloadJson {
  sent: number;
  answered: number;
  lost: number;
  seconds: number;
  qps: number;
  p50_us: number;
  p99_us: number;
  with_answer: number;
  rcodes: number[];
}

/** `prefix`: a command that runs dnsload pinned to a core (['taskset', '-c', '1']), or []. */
export function dnsloadClient(path: string, prefix: string[] = []): LoadClient {
  return {
    describe: 'dnsload (bench/dnsload.c: one thread, one socket, sendmmsg/recvmmsg)',
    close: () => rmSync(dirname(path), { recursive: true, force: true }),
    run: (port, queries, opts) => {
      const argv = ['-s', '127.0.0.1', '-p', String(port), '-b', DEVBOX, '-t', queries.template, '-k', String(queries.cycle), '-l', String(opts.seconds), '-n', String(opts.maxQueries), '-q', String(Math.max(1, opts.window)), '-Q', String(opts.rate)];
      // Sending stops at the deadline; lost queries are given up on 1.25 s later at most.
      const timeout = (opts.seconds + 10) * 1000;
      return new Promise((resolve, reject) => {
        const [cmd, ...rest] = prefix.length > 0 ? [...prefix, path, ...argv] : [path, ...argv];
        execFile(cmd!, rest, { timeout }, (err, stdout, stderr) => {
          const line = stdout.trim().split('\n').at(-1) ?? '';
          if (err || !line.startsWith('{')) return reject(new Error(`dnsload ${argv.join(' ')}: ${err?.message ?? ''} ${stderr}`.trim()));
          const j = JSON.parse(line) as DnsloadJson;
          const ms = (us: number) => (us < 0 ? NaN : us / 1000);
          resolve({
            sent: j.sent,
            answered: j.answered,
            lost: j.lost,
            seconds: j.seconds,
            qps: j.qps,
            p50Ms: ms(j.p50_us),
            p99Ms: ms(j.p99_us),
            rcodes: j.rcodes,
            withAnswer: j.with_answer,
          });
        });
      });
    },
  };
}

// ── the Node client (fallback: it costs about as much CPU as the door) ────────────────

/** Wire query for `name`, type A, RD, with an EDNS OPT (UDP 1232); id 0. */
export function wireQuery(name: string): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id: 0,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: 'A', class: 'IN', name }],
    additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }],
  });
}

function queryMaker(q: QuerySet): (i: number) => Buffer {
  const name = (i: number) => q.template.replace('%u', String(q.cycle > 0 ? i % q.cycle : i));
  if (q.cycle === 0 || q.cycle > 100_000) return (i) => wireQuery(name(i));
  const pre = Array.from({ length: q.cycle }, (_, i) => wireQuery(name(i)));
  return (i) => pre[i % pre.length]!;
}

function pct(a: Float64Array, p: number): number {
  if (a.length === 0) return NaN;
  const sorted = Float64Array.from(a).sort();
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export function nodeClient(sockets: number): LoadClient {
  return {
    describe: `Node client (${sockets} sockets, this process)`,
    close: () => {},
    run: (port, queries, opts) => nodeLoad(port, queryMaker(queries), opts, sockets),
  };
}

async function nodeLoad(port: number, next: (i: number) => Buffer, opts: LoadOptions, nSockets: number): Promise<LoadResult> {
  const socks: dgram.Socket[] = [];
  for (let i = 0; i < nSockets; i++) {
    const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 << 20, sendBufferSize: 8 << 20 });
    await new Promise<void>((r) => s.bind(0, DEVBOX, r));
    socks.push(s);
  }
  const window = Math.max(1, opts.window);
  const sentAt = socks.map(() => new Float64Array(65536));
  const ids = socks.map(() => 0);
  const outstanding = socks.map(() => 0);
  const lat = new Float64Array(opts.maxQueries);
  const rcodes = new Array<number>(16).fill(0);
  let nLat = 0;
  let sent = 0;
  let answered = 0;
  let withAnswer = 0;
  let lost = 0;
  let stop = false;
  const perSocketWindow = Math.max(1, Math.floor(window / nSockets));
  const started = performance.now();
  let lastAnswer = started;
  const deadline = started + opts.seconds * 1000;

  const sendOne = (k: number) => {
    // A copy: dgram may still hold the previous buffer when the id is rewritten.
    const q = Buffer.from(next(sent));
    const id = ids[k]!;
    ids[k] = (id + 1) & 0xffff;
    q[0] = id >> 8;
    q[1] = id & 255;
    sentAt[k]![id] = performance.now();
    outstanding[k]!++;
    sent++;
    socks[k]!.send(q, port, '127.0.0.1');
  };
  const fill = (k: number) => {
    while (!stop && outstanding[k]! < perSocketWindow && sent < opts.maxQueries) sendOne(k);
  };
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  const finishIfDone = () => {
    if ((stop || sent >= opts.maxQueries) && outstanding.every((o) => o === 0)) resolveDone();
  };
  socks.forEach((s, k) => {
    s.on('message', (m) => {
      if (m.length < 12) return;
      const id = (m[0]! << 8) | m[1]!;
      const t = sentAt[k]![id]!;
      if (t === 0) return;
      sentAt[k]![id] = 0;
      outstanding[k]!--;
      answered++;
      lastAnswer = performance.now();
      rcodes[m[3]! & 15]!++;
      if (m[6] !== 0 || m[7] !== 0) withAnswer++;
      if (nLat < lat.length) lat[nLat++] = lastAnswer - t;
      if (opts.rate === 0) fill(k);
      finishIfDone();
    });
  });
  // Losses: anything unanswered after 1 s frees its window slot.
  const reaper = setInterval(() => {
    const old = performance.now() - 1000;
    sentAt.forEach((arr, k) => {
      for (let i = 0; i < arr.length; i++) {
        if (arr[i]! !== 0 && arr[i]! < old) {
          arr[i] = 0;
          outstanding[k]!--;
          lost++;
        }
      }
      if (opts.rate === 0) fill(k);
    });
    if (performance.now() > deadline) stop = true;
    finishIfDone();
  }, 250);
  const stopper = setTimeout(() => (stop = true), opts.seconds * 1000);
  let pacer: NodeJS.Timeout | null = null;
  if (opts.rate === 0) for (let k = 0; k < socks.length; k++) fill(k);
  else {
    let k = 0;
    pacer = setInterval(() => {
      const due = Math.min(opts.maxQueries, Math.floor(((performance.now() - started) / 1000) * opts.rate));
      while (!stop && sent < due) sendOne(k++ % nSockets);
      if (performance.now() > deadline) stop = true;
      finishIfDone();
    }, 1);
  }
  await done;
  clearInterval(reaper);
  clearTimeout(stopper);
  if (pacer) clearInterval(pacer);
  for (const s of socks) s.close();
  const seconds = (lastAnswer - started) / 1000;
  const l = lat.subarray(0, nLat);
  return { sent, answered, lost, seconds, qps: seconds > 0 ? answered / seconds : 0, p50Ms: pct(l, 50), p99Ms: pct(l, 99), rcodes, withAnswer };
}

// ── probe ─────────────────────────────────────────────────────────────────────────────

/** One query for `name` (A) from the devbox address, retried until answered or `timeoutMs`. */
export async function probe(port: number, name: string, timeoutMs: number): Promise<dnsPacket.Packet | null> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, DEVBOX, r));
  sock.on('error', () => {}); // ICMP port unreachable while a server starts: retried below
  const query = wireQuery(name);
  query.writeUInt16BE(0x4242, 0);
  try {
    return await new Promise((resolve) => {
      const deadline = Date.now() + timeoutMs;
      let timer: NodeJS.Timeout;
      const ask = () => {
        if (Date.now() > deadline) return resolve(null);
        sock.send(query, port, '127.0.0.1');
        timer = setTimeout(ask, 200);
      };
      sock.on('message', (m) => {
        if (m.length < 12 || m.readUInt16BE(0) !== 0x4242) return;
        clearTimeout(timer);
        try {
          resolve(dnsPacket.decode(m));
        } catch {
          resolve(null);
        }
      });
      ask();
    });
  } finally {
    sock.close();
  }
}
