/**
 * The sqlite store: one better-sqlite3 file (WAL, busy timeout, every write in an IMMEDIATE
 * transaction so several processes can share the file). Here: opening it, its migrations, the
 * write transaction and cursor pages its repositories use (one file each beside this one), and
 * the synchronous reads the data plane needs: it is the doors' PolicySource (change events fire
 * after each committed write in this process, and other processes' writes on the same file are
 * picked up from the change log by a short poll) and, through `credentials`, their CredentialSource.
 *
 * Validation of user input is the API's job; the store enforces what the database can:
 * unique names per account, unique addresses among running devboxes, policies in use.
 */
import { EventEmitter } from 'node:events';
import { accessSync, constants as fsConstants, existsSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { ConfigError } from '../../config.js';
import type { CredentialSource } from '../../policy/credentials.js';
import type { Devbox, NetworkPolicy } from '../../policy/model.js';
import type { PolicySource, SourceChange } from '../../policy/source.js';
import { migrate } from '../migrations.js';
import { takePage } from '../paging.js';
import { SecretBox } from '../secret-box.js';
import { type Page, type PageQuery, type Quotas, storageFault } from '../types.js';
import { SqliteAgents } from './agents.js';
import { SqliteBlueprints } from './blueprints.js';
import { SqliteChecks } from './checks.js';
import type { SqliteContext, StoreChange } from './context.js';
import { SqliteDenialEvents } from './denial-events.js';
import { SqliteDevboxes } from './devboxes.js';
import { SqliteFeed } from './feed.js';
import { SqlitePolicies } from './policies.js';
import { SqliteTokens } from './tokens.js';

const CHANGE_POLL_MS = 500;
/** Change records kept behind the newest (the change feed's window). */
export const CHANGE_LOG_KEEP = 10_000;
const PROBE_EVERY_MS = 1000;
/** How long a write that failed on storage keeps /readyz unready, unless a write succeeds first. */
const WRITE_FAULT_HOLD_MS = 10_000;

export interface OpenOptions {
  /** Refuse (ConfigError) unless a write commits now: for `serve` and `tokens create|revoke`. */
  writable?: boolean;
  /** Change records kept behind the newest (default CHANGE_LOG_KEEP). */
  changeLogKeep?: number;
  /** The secrets key file; `create`: make it when missing (the process that owns the store). None: secrets cannot be written or read. */
  secrets?: { keyFile: string; create: boolean };
  /** A secrets key already opened (instead of `secrets`). */
  box?: SecretBox | null;
}

/** Why the file (or, when it does not exist yet, its folder) cannot be written, or null. */
function notWritable(file: string): string | null {
  const target = existsSync(file) ? file : dirname(file);
  try {
    accessSync(target, fsConstants.W_OK);
    return null;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EROFS') return `${target} is on a read-only file system (EROFS)`;
    if (code === 'EPERM') return `${target} is immutable (EPERM; see lsattr)`;
    if (code === 'EACCES') return `no permission to write ${target} (EACCES)`;
    return `${target}: ${(e as Error).message}`;
  }
}

/** The nearest folder above path that exists (mkdir -p fails at the first one it cannot create). */
function nearestExisting(path: string): string {
  let p = path;
  while (!existsSync(p) && dirname(p) !== p) p = dirname(p);
  return p;
}

/**
 * Opens (creating folder, file and schema as needed) the sqlite store at path. Every problem
 * is a ConfigError naming --db and the cause (read-only, full, not a database), never a stack.
 */
export function openSqliteStore(path: string, opts: OpenOptions = {}): SqliteStore {
  const file = path === ':memory:' ? path : resolve(path);
  let db: Database.Database;
  if (file !== ':memory:') {
    try {
      mkdirSync(dirname(file), { recursive: true });
    } catch (e) {
      const why = notWritable(nearestExisting(dirname(file))) ?? (e as Error).message;
      throw new ConfigError('--db', `cannot create the folder ${dirname(file)}: ${why}`);
    }
  }
  try {
    db = new Database(file, { timeout: 5000 });
  } catch (e) {
    const why = (file !== ':memory:' && notWritable(file)) || (e as Error).message;
    throw new ConfigError('--db', `cannot open ${file}: ${why}`);
  }
  try {
    db.pragma('busy_timeout = 5000');
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    db.function('casefold', { deterministic: true }, (s: unknown) => (typeof s === 'string' ? s.toLowerCase() : s));
    migrate(db);
  } catch (e) {
    db.close();
    const fault = storageFault(e);
    const why = fault && fault.code !== 'SQLITE_NOTADB' ? `${(file !== ':memory:' && notWritable(file)) || fault.reason}` : (e as Error).message;
    throw new ConfigError('--db', `${file} is not a usable egress-gateway database: ${why}`);
  }
  let box: SecretBox | null;
  try {
    box = opts.box !== undefined ? opts.box : opts.secrets ? new SecretBox(opts.secrets.keyFile, opts.secrets.create) : null;
  } catch (e) {
    db.close();
    throw e;
  }
  const store = new SqliteStore(db, file, opts.changeLogKeep, box);
  if (opts.writable) {
    const why = store.probeWritable();
    if (why !== null) {
      store.close();
      throw new ConfigError('--db', `cannot write ${file}: ${(file !== ':memory:' && notWritable(file)) || why}`);
    }
  }
  return store;
}

export class SqliteStore implements PolicySource {
  readonly tokens: SqliteTokens;
  readonly policies: SqlitePolicies;
  readonly devboxes: SqliteDevboxes;
  readonly blueprints: SqliteBlueprints;
  readonly denialEvents: SqliteDenialEvents;
  /** Secrets, gateway and MCP configs, agent tokens (sqlite/agents.ts). */
  readonly agents: SqliteAgents;
  readonly feed: SqliteFeed;
  private readonly checks: SqliteChecks;

  private readonly events = new EventEmitter();
  private followedSeq: number;
  /** change_log rows this process wrote (already announced); the poll skips them. */
  private readonly ownSeqs = new Set<number>();
  private readonly poll: NodeJS.Timeout;
  private closed = false;
  private lastProbe = { at: 0, why: null as string | null };
  /** The storage fault of the last write, until a write succeeds. */
  private writeFault: { at: number; reason: string } | null = null;
  private readonly q;

  constructor(
    private readonly db: Database.Database,
    readonly path: string,
    private readonly changeLogKeep: number = CHANGE_LOG_KEEP,
    box: SecretBox | null = null,
  ) {
    this.events.setMaxListeners(0);
    const p = (sql: string) => db.prepare(sql);
    this.q = {
      logChange: p('INSERT INTO change_log (kind, id, account_id, value, host_id) VALUES (?, ?, ?, ?, ?)'),
      changesSince: p('SELECT seq, kind, id, account_id FROM change_log WHERE seq > ? ORDER BY seq'),
      maxSeq: p('SELECT coalesce(max(seq), 0) FROM change_log').pluck(),
      pruneLog: p('DELETE FROM change_log WHERE seq <= ?'),
      probe: p(`INSERT INTO meta (key, value) VALUES ('ready_probe', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`),
    };
    const ctx: SqliteContext = { db, box, write: (fn) => this.write(fn), page: (t, w, ps, q, m) => this.page(t, w, ps, q, m) };
    this.checks = new SqliteChecks(ctx);
    this.agents = new SqliteAgents(ctx);
    this.tokens = new SqliteTokens(ctx);
    this.policies = new SqlitePolicies(ctx, this.checks);
    this.blueprints = new SqliteBlueprints(ctx, this.checks);
    this.devboxes = new SqliteDevboxes(ctx, this.checks, this.blueprints, this.agents.tokens);
    this.denialEvents = new SqliteDenialEvents(ctx, path);
    this.feed = new SqliteFeed(ctx, () => this.runningDevboxes(), this.agents);
    this.followedSeq = this.q.maxSeq.get() as number;
    this.poll = setInterval(() => this.followOtherWriters(), CHANGE_POLL_MS);
    this.poll.unref();
  }

  /** What the agent-gateway and MCP-hub doors read. */
  get credentials(): CredentialSource {
    return this.agents.credentials;
  }

  /** Limits what each account may store from now on (checked in each write's transaction). */
  setQuotas(q: Quotas | null): void {
    this.checks.setQuotas(q);
  }

  // ── PolicySource ──────────────────────────────────────────────────────────

  getPolicy(id: string): NetworkPolicy | undefined {
    return this.policies.byId(id);
  }

  /** A devbox, or a blueprint build as the engine sees it (running while the build is active). */
  getDevbox(id: string): Devbox | undefined {
    return id.startsWith('bpt_') ? this.blueprints.runtime(id) : this.devboxes.byId(id);
  }

  runningDevboxes(): Devbox[] {
    return [...this.devboxes.running(), ...this.blueprints.activeRuntimes()];
  }

  onChange(listener: (change: SourceChange) => void): () => void {
    this.events.on('change', listener);
    return () => this.events.off('change', listener);
  }

  /** Reads other processes' changes now instead of at the next poll. */
  refresh(): void {
    if (!this.closed) this.followOtherWriters();
  }

  private followOtherWriters(): void {
    if (this.closed) return;
    try {
      const rows = this.q.changesSince.all(this.followedSeq) as { seq: number; kind: string; id: string; account_id: string }[];
      for (const r of rows) {
        this.followedSeq = r.seq;
        if (this.ownSeqs.delete(r.seq)) continue;
        // Agent resources are read per request (the CredentialSource), nothing to announce.
        if (r.kind === 'policy' || r.kind === 'devbox') this.events.emit('change', { kind: r.kind, id: r.id, accountId: r.account_id } satisfies SourceChange);
      }
    } catch {
      // Busy or closing: try again on the next tick.
    }
  }

  // ── the write transaction and pages the repositories use ───────────────────

  /** Runs fn in an IMMEDIATE transaction, then fires the change events it collected. */
  private write<T>(fn: (changes: StoreChange[]) => T): T {
    const changes: StoreChange[] = [];
    const seqs: number[] = [];
    const tx = this.db.transaction(() => {
      changes.length = 0;
      seqs.length = 0;
      const out = fn(changes);
      for (const c of changes) {
        const value = 'value' in c ? (c.value ?? undefined) : c.kind === 'policy' ? this.getPolicy(c.id) : this.getDevbox(c.id);
        const host = c.kind === 'devbox' ? ((value as Devbox | undefined)?.host_id ?? null) : null;
        seqs.push(Number(this.q.logChange.run(c.kind, c.id, c.accountId, value === undefined ? null : JSON.stringify(value), host).lastInsertRowid));
      }
      // A bounded window: a reader further behind than this takes a snapshot.
      if (seqs.length > 0) this.q.pruneLog.run(seqs[seqs.length - 1]! - this.changeLogKeep);
      return out;
    });
    let out: T;
    try {
      out = tx.immediate();
    } catch (e) {
      const fault = storageFault(e);
      if (fault && !fault.code.startsWith('SQLITE_BUSY')) this.writeFault = { at: Date.now(), reason: fault.reason };
      throw fault ?? e;
    }
    this.writeFault = null;
    for (const s of seqs) if (s > this.followedSeq) this.ownSeqs.add(s);
    for (const c of changes) if (c.kind === 'policy' || c.kind === 'devbox') this.events.emit('change', c);
    return out;
  }

  private page<R, T>(table: string, where: string[], params: Record<string, unknown>, query: PageQuery, map: (r: R) => T): Page<T> {
    const read = this.db.transaction(() => {
      const cond = [...where];
      if (query.startingAfter) {
        cond.push('id > @after');
        params.after = query.startingAfter;
      }
      const taken = takePage(this.db.prepare(`SELECT * FROM ${table} WHERE ${cond.join(' AND ')} ORDER BY id LIMIT @lim`).iterate({ ...params, lim: query.limit + 1 }) as IterableIterator<R>, query);
      const total =
        query.includeTotalCount === false
          ? null
          : (this.db
              .prepare(`SELECT count(*) FROM ${table} WHERE ${where.join(' AND ')}`)
              .pluck()
              .get(params) as number);
      return { ...taken, total };
    });
    const { rows, hasMore, total } = read.deferred();
    return { items: rows.map(map), hasMore, totalCount: total };
  }

  // ── health ────────────────────────────────────────────────────────────────

  /**
   * Null when the store takes writes: a small write commits now (probed at most once a
   * second), and no write failed on storage in the last 10 s. Else why not.
   */
  probeWritable(): string | null {
    const now = Date.now();
    // A small write can pass where a real one failed (a disk with room for a page, not a policy).
    if (this.writeFault !== null && now - this.writeFault.at < WRITE_FAULT_HOLD_MS) return this.writeFault.reason;
    if (now - this.lastProbe.at < PROBE_EVERY_MS) return this.lastProbe.why;
    let why: string | null = null;
    // A short busy wait: a probe must not stall the event loop behind another process's write.
    this.db.pragma('busy_timeout = 250');
    try {
      this.db.transaction(() => this.q.probe.run(String(now))).immediate();
    } catch (e) {
      const f = storageFault(e);
      why = f === null ? (e as Error).message : f.code.startsWith('SQLITE_BUSY') ? null : f.reason;
    } finally {
      this.db.pragma('busy_timeout = 5000');
    }
    this.lastProbe = { at: now, why };
    return why;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.denialEvents.close();
    clearInterval(this.poll);
    this.events.removeAllListeners();
    this.db.close();
  }
}
