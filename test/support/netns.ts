/**
 * Real network namespaces for the sidecar proof: a "lab" of devbox and origin namespaces
 * joined to the host by veth pairs, with addresses from the benchmarking range
 * 198.18.0.0/15 (RFC 2544) picked per process so parallel or leftover runs don't clash.
 * Every name carries the pid; teardown is idempotent and also runs on process exit.
 */
import { execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { killTree, spawnTree } from './processes.js';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command without blocking the event loop (the gateway under test may be in-process). */
export function run(cmd: string, args: readonly string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: opts.timeoutMs ?? 20_000, maxBuffer: 16 * 1024 * 1024, env: cleanEnv() }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string }) | null;
      const code = e === null ? 0 : typeof e.code === 'number' ? e.code : 127;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) + (e && typeof e.code !== 'number' ? String(e.message) : '') });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** The environment without any proxy settings: a devbox here has none. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (/^(https?|all|no|ftp)_proxy$/i.test(k)) delete env[k];
  return env;
}

async function must(cmd: string, args: readonly string[], input?: string): Promise<string> {
  const r = await run(cmd, args, input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

/**
 * Whether this machine lets us create network namespaces (root, iproute2, no seccomp
 * ban). Returns null when it does, else the reason.
 */
export function netnsUnavailable(): string | null {
  const probe = `egw-probe-${process.pid}`;
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'pipe' });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: Buffer };
    if (err.code === 'ENOENT') return '`ip` (iproute2) is not installed';
    return `\`ip netns add\` is not allowed here: ${String(err.stderr ?? err.message).trim()}`;
  }
  try {
    execFileSync('ip', ['netns', 'del', probe], { stdio: 'pipe' });
  } catch {
    /* best effort */
  }
  return null;
}

/** /etc/hosts inside every namespace: loopback only. */
export const NAMESPACE_HOSTS = '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n';

function v4ToInt(ip: string): number {
  return ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
}

function intToV4(n: number): string {
  return [24, 16, 8, 0].map((s) => (Math.floor(n / 2 ** s) % 256).toString()).join('.');
}

export interface Link {
  /** Namespace name. */
  ns: string;
  /** Host-side veth name. */
  hostIf: string;
  /** Namespace-side veth name. */
  nsIf: string;
  hostIp: string;
  nsIp: string;
  /** The /30 the pair lives in. */
  cidr: string;
}

export interface LabOptions {
  /** Short role names, e.g. ['a', 'b', 'o']; each gets its own namespace and /30. */
  roles: string[];
  /** nameserver line written to /etc/netns/<ns>/resolv.conf for these roles. */
  resolvConf?: Record<string, string>;
}

/**
 * One lab per process. `up()` builds it; `down()` (idempotent, synchronous so that it can
 * also run from process.on('exit')) removes namespaces, /etc/netns files, the nftables
 * table and restores net.ipv4.ip_forward.
 */
export class NetnsLab {
  readonly tag = `egw${process.pid}`;
  readonly links: Record<string, Link> = {};
  /** Host-side base of this run's /28 inside 198.18.0.0/15. */
  readonly base: number;
  private created: string[] = [];
  private etcDirs: string[] = [];
  private tables: string[] = [];
  private children: ChildProcess[] = [];
  private forwardWas: string | null = null;
  private downDone = false;
  private readonly onExit = () => this.down();

  constructor(private readonly opts: LabOptions) {
    if (opts.roles.length > 4) throw new Error('at most 4 roles per lab (one /28)');
    this.base = v4ToInt('198.18.0.0') + (process.pid % 8192) * 16;
    opts.roles.forEach((role, i) => {
      const net = this.base + i * 4;
      this.links[role] = {
        ns: `${this.tag}-${role}`,
        hostIf: `${this.tag}${role}`.slice(0, 13) + 'h',
        nsIf: `${this.tag}${role}`.slice(0, 13) + 'n',
        hostIp: intToV4(net + 1),
        nsIp: intToV4(net + 2),
        cidr: `${intToV4(net)}/30`,
      };
    });
    process.on('exit', this.onExit);
  }

  /** The /28 holding every link of this lab. */
  get cidr(): string {
    return `${intToV4(this.base)}/28`;
  }

  link(role: string): Link {
    const l = this.links[role];
    if (!l) throw new Error(`no role ${role}`);
    return l;
  }

  /** Removes namespaces, /etc/netns folders and e2e nftables tables left by runs whose process is gone (killed by a signal). */
  async sweepStale(): Promise<void> {
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch (e) {
        return (e as NodeJS.ErrnoException).code === 'EPERM';
      }
    };
    const list = await run('ip', ['netns', 'list']);
    for (const line of list.stdout.split('\n')) {
      const m = /^(egw(\d+)-[a-z])\b/.exec(line.trim());
      if (!m || alive(Number(m[2]))) continue;
      await run('ip', ['netns', 'del', m[1]!]);
      rmSync(`/etc/netns/${m[1]!}`, { recursive: true, force: true });
    }
    const tables = await run('nft', ['list', 'tables', 'inet']);
    for (const m of tables.stdout.matchAll(/table inet (egw_e2e_(\d+))/g)) {
      if (!alive(Number(m[2]))) await run('nft', ['delete', 'table', 'inet', m[1]!]);
    }
  }

  async up(): Promise<void> {
    await this.sweepStale();
    for (const role of this.opts.roles) {
      const l = this.link(role);
      // A leftover from a crashed run with the same pid: remove it first.
      await run('ip', ['netns', 'del', l.ns]);
      await run('ip', ['link', 'del', l.hostIf]);
      await must('ip', ['netns', 'add', l.ns]);
      this.created.push(l.ns);
      await must('ip', ['-n', l.ns, 'link', 'set', 'lo', 'up']);
      await must('ip', ['link', 'add', l.hostIf, 'type', 'veth', 'peer', 'name', l.nsIf, 'netns', l.ns]);
      await must('ip', ['addr', 'add', `${l.hostIp}/30`, 'dev', l.hostIf]);
      await must('ip', ['link', 'set', l.hostIf, 'up']);
      await must('ip', ['-n', l.ns, 'addr', 'add', `${l.nsIp}/30`, 'dev', l.nsIf]);
      await must('ip', ['-n', l.ns, 'link', 'set', l.nsIf, 'up']);
      await must('ip', ['-n', l.ns, 'route', 'add', 'default', 'via', l.hostIp]);
      // `ip netns exec` bind-mounts each file in /etc/netns/<ns>/ over its namesake in /etc.
      // Every namespace gets its own hosts file: the host's may name the test's names
      // (allowed.test, denied.test), which would bypass the DNS door under test.
      const dir = `/etc/netns/${l.ns}`;
      mkdirSync(dir, { recursive: true });
      this.etcDirs.push(dir);
      writeFileSync(`${dir}/hosts`, NAMESPACE_HOSTS);
      const resolv = this.opts.resolvConf?.[role];
      if (resolv !== undefined) writeFileSync(`${dir}/resolv.conf`, resolv);
    }
  }

  /** Routes between the namespaces through the host (restored by down()). */
  enableForwarding(): void {
    if (this.forwardWas === null) this.forwardWas = readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();
    writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
  }

  /** Loads an nftables ruleset whose table (family inet) `down()` will delete. */
  async loadNft(table: string, ruleset: string): Promise<void> {
    if (!this.tables.includes(table)) this.tables.push(table);
    await must('nft', ['-f', '-'], ruleset);
  }

  /** Runs a command inside a namespace. */
  exec(role: string, cmd: string, args: readonly string[], timeoutMs = 20_000): Promise<RunResult> {
    return run('ip', ['netns', 'exec', this.link(role).ns, cmd, ...args], { timeoutMs });
  }

  /** Starts a long-running process inside a namespace; it is killed by down(). Lines of stdout go to onLine. */
  spawnIn(role: string, cmd: string, args: readonly string[], onLine: (line: string) => void): ChildProcess {
    const child = spawnTree('ip', ['netns', 'exec', this.link(role).ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv() });
    this.children.push(child);
    createInterface({ input: child.stdout! }).on('line', onLine);
    child.stderr!.on('data', (d: Buffer) => process.stderr.write(`[${role}] ${d.toString()}`));
    return child;
  }

  /** What down() should have removed but is still there (for the teardown test). */
  leftovers(): string[] {
    const out: string[] = [];
    for (const d of this.etcDirs) if (existsSync(d)) out.push(d);
    if (this.forwardWas !== null && readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim() !== this.forwardWas) out.push('net.ipv4.ip_forward');
    return out;
  }

  down(): void {
    if (this.downDone) return;
    this.downDone = true;
    process.off('exit', this.onExit);
    for (const c of this.children) killTree(c);
    const quiet = (cmd: string, args: string[]) => {
      try {
        execFileSync(cmd, args, { stdio: 'ignore' });
      } catch {
        /* already gone */
      }
    };
    for (const t of this.tables) quiet('nft', ['delete', 'table', 'inet', t]);
    for (const ns of this.created) quiet('ip', ['netns', 'del', ns]);
    for (const l of Object.values(this.links)) quiet('ip', ['link', 'del', l.hostIf]);
    for (const d of this.etcDirs) rmSync(d, { recursive: true, force: true });
    if (this.forwardWas !== null) {
      try {
        writeFileSync('/proc/sys/net/ipv4/ip_forward', this.forwardWas);
      } catch {
        /* best effort */
      }
    }
  }
}
