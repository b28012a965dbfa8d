/**
 * The sqlite store: API tokens, network policies and devboxes, in one better-sqlite3 file
 * (WAL, busy timeout, every write in an IMMEDIATE transaction so several processes can
 * share the file). It is the gateway's PolicySource: change events fire synchronously
 * after each committed write in this process, and writes made by other processes on the
 * same file are picked up from a change log by a short poll.
 *
 * Validation of user input is the API's job; the store enforces what the database can:
 * unique names per account, unique addresses among running devboxes, policies in use.
 */
import { accessSync, constants as fsConstants, existsSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import Database from 'better-sqlite3';
import { ConfigError, type ApiToken } from '../config.js';
import { type Devbox, type DevboxStatus, type EgressRules, type NetworkPolicy, DEFAULT_EGRESS, completeEgress } from '../policy/model.js';
import type { PolicySource, SourceChange } from '../policy/source.js';
import { hashPassword } from '../policy/engine.js';
import { migrate } from './migrations.js';
import { newId, randomAlnum, randomSecret } from './ids.js';

export type StoreErrorCode = 'not_found' | 'duplicate_name' | 'policy_in_use' | 'policy_not_found' | 'address_in_use' | 'ambiguous';

/** A write the data forbids; the API turns it into a 400 or 404 with this message. */
export class StoreError extends Error {
  constructor(readonly code: StoreErrorCode, message: string, readonly details: Record<string, unknown> = {}) {
    super(message);
  }
}

/**
 * The database cannot be used: disk full, read-only, I/O error, locked. The API answers
 * 503 storage_unavailable with this message; nothing the client sent is wrong.
 */
export class StorageUnavailable extends Error {
  constructor(readonly reason: string, readonly code: string) {
    super(`the policy store is unavailable: ${reason}`);
  }
}

/** The storage fault behind an error thrown by better-sqlite3 or the file system, or null. */
export function storageFault(e: unknown): StorageUnavailable | null {
  if (e instanceof StorageUnavailable) return e;
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return null;
  let why: string;
  if (code === 'SQLITE_FULL' || code === 'ENOSPC') why = 'the database or its disk is full';
  else if (code.startsWith('SQLITE_READONLY') || code === 'EROFS') why = 'the database is read-only';
  else if (code.startsWith('SQLITE_IOERR') || code === 'EIO') why = 'disk I/O error';
  else if (code === 'SQLITE_CANTOPEN') why = 'the database file cannot be opened';
  else if (code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB') why = 'the database file is corrupt';
  else if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) why = 'the database is locked by another process';
  else return null;
  return new StorageUnavailable(`${why} (${code})`, code);
}

export type TokenOrigin = 'configured' | 'created' | 'first-start';

/** A stored API token as `egress-gateway tokens list` shows it; the token itself is never stored. */
export interface TokenInfo {
  id: string;
  /** The first characters of the token (at most a quarter of it); null for tokens stored before they were kept. */
  prefix: string | null;
  accountId: string;
  origin: TokenOrigin;
  createTimeMs: number;
  /** Updated at most once a minute; null when never used since it was stored. */
  lastUsedMs: number | null;
}

export interface PageQuery {
  /** Items to return (the API checks 1..5000). */
  limit: number;
  /** Only items whose id sorts after this one. */
  startingAfter?: string | null;
  includeTotalCount?: boolean;
}

export interface PolicyQuery extends PageQuery {
  /** Case-insensitive substring of the name. */
  name?: string | null;
  id?: string | null;
}

export interface DevboxQuery extends PageQuery {
  status?: DevboxStatus | null;
}

export interface Page<T> {
  items: T[];
  hasMore: boolean;
  /** Items matching the filters (ignoring starting_after and limit); null when not asked for. */
  totalCount: number | null;
}

export interface PolicyInput {
  name: string;
  description?: string | null;
  egress?: Partial<EgressRules>;
}

/** Fields present replace; absent (undefined) fields keep their values. */
export interface PolicyPatch {
  name?: string;
  description?: string | null;
  egress?: Partial<EgressRules>;
}

export interface DevboxInput {
  name?: string | null;
  metadata?: Record<string, string>;
  networkPolicyId?: string | null;
  /** Canonical IP literals (the API canonicalises). */
  addresses?: string[];
}

/** undefined keeps; networkPolicyId null detaches the policy (the default, deny all, applies). */
export interface DevboxPatch {
  name?: string | null;
  metadata?: Record<string, string>;
  networkPolicyId?: string | null;
}

export interface Store extends PolicySource {
  readonly path: string;
  /** Reads other processes' changes now instead of at the next poll. */
  refresh(): void;
  /**
   * Makes the configured tokens exactly the set given (a configured token no longer given
   * is deleted, also when none are given); with none configured and none stored, creates
   * a first-start token for account `default` and returns it.
   */
  ensureTokens(configured: readonly ApiToken[]): string | null;
  accountForToken(token: string): string | null;
  listTokens(): TokenInfo[];
  /** A new token for the account, returned once; only its hash is stored. */
  createToken(accountId: string): { token: string; info: TokenInfo };
  /** Deletes the one token whose id, id prefix, display prefix or full text is ref. */
  revokeToken(ref: string): TokenInfo;

  /**
   * Null when the store takes writes: a small write commits now (probed at most once a
   * second), and no write failed on storage in the last 10 s. Else why not.
   */
  probeWritable(): string | null;

  createPolicy(accountId: string, input: PolicyInput): NetworkPolicy;
  getPolicyFor(accountId: string, id: string): NetworkPolicy | undefined;
  getPolicyByName(accountId: string, name: string): NetworkPolicy | undefined;
  updatePolicy(accountId: string, id: string, patch: PolicyPatch): NetworkPolicy;
  deletePolicy(accountId: string, id: string): NetworkPolicy;
  listPolicies(accountId: string, query: PolicyQuery): Page<NetworkPolicy>;

  /** Returns the devbox and its proxy password (stored only as a hash). */
  createDevbox(accountId: string, input: DevboxInput): { devbox: Devbox; password: string };
  getDevboxFor(accountId: string, id: string): Devbox | undefined;
  updateDevbox(accountId: string, id: string, patch: DevboxPatch): Devbox;
  shutdownDevbox(accountId: string, id: string): Devbox;
  listDevboxes(accountId: string, query: DevboxQuery): Page<Devbox>;
  /** Running devboxes attached to the policy. */
  devboxesUsingPolicy(policyId: string): Devbox[];

  close(): void;
}

export const DEFAULT_ACCOUNT = 'default';
const CHANGE_POLL_MS = 500;

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** What `tokens list` shows of a token: at most 12 characters and at most a quarter of it. */
export function tokenPrefix(token: string): string {
  return token.slice(0, Math.min(12, Math.floor(token.length / 4)));
}

const newToken = () => `egw_${randomSecret(32)}`;
const TOUCH_EVERY_MS = 60_000;
const PROBE_EVERY_MS = 1000;
/** How long a write that failed on storage keeps /readyz unready, unless a write succeeds first. */
const WRITE_FAULT_HOLD_MS = 10_000;

interface TokenRow {
  id: string;
  token_hash: string;
  prefix: string | null;
  account_id: string;
  origin: TokenOrigin;
  create_time_ms: number;
  last_used_ms: number | null;
}

function toTokenInfo(r: TokenRow): TokenInfo {
  return { id: r.id, prefix: r.prefix, accountId: r.account_id, origin: r.origin, createTimeMs: r.create_time_ms, lastUsedMs: r.last_used_ms };
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


interface PolicyRow {
  id: string;
  account_id: string;
  name: string;
  description: string | null;
  egress: string;
  version: number;
  create_time_ms: number;
  update_time_ms: number;
}

interface DevboxRow {
  id: string;
  account_id: string;
  name: string | null;
  status: string;
  network_policy_id: string | null;
  addresses: string;
  metadata: string;
  tunnel_key: string;
  password_hash: string;
  create_time_ms: number;
  end_time_ms: number | null;
}

function toPolicy(r: PolicyRow): NetworkPolicy {
  return {
    id: r.id,
    account_id: r.account_id,
    name: r.name,
    description: r.description,
    egress: completeEgress(DEFAULT_EGRESS, JSON.parse(r.egress) as Partial<EgressRules>),
    create_time_ms: r.create_time_ms,
    update_time_ms: r.update_time_ms,
    version: r.version,
  };
}

function toDevbox(r: DevboxRow): Devbox {
  return {
    id: r.id,
    account_id: r.account_id,
    name: r.name,
    status: r.status as DevboxStatus,
    network_policy_id: r.network_policy_id,
    addresses: JSON.parse(r.addresses) as string[],
    metadata: JSON.parse(r.metadata) as Record<string, string>,
    tunnel_key: r.tunnel_key,
    password_hash: r.password_hash,
    create_time_ms: r.create_time_ms,
    end_time_ms: r.end_time_ms,
  };
}

function isUniqueViolation(e: unknown): boolean {
  const code = (e as { code?: string }).code;
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

export interface OpenOptions {
  /** Refuse (ConfigError) unless a write commits now: for `serve` and `tokens create|revoke`. */
  writable?: boolean;
}

/**
 * Opens (creating folder, file and schema as needed) the store at path. Every problem is a
 * ConfigError naming --db and the cause (read-only, full, not a database), never a stack.
 */
export function openStore(path: string, opts: OpenOptions = {}): Store {
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
  const store = new SqliteStore(db, file);
  if (opts.writable) {
    const why = store.probeWritable();
    if (why !== null) {
      store.close();
      throw new ConfigError('--db', `cannot write ${file}: ${(file !== ':memory:' && notWritable(file)) || why}`);
    }
  }
  return store;
}

function statements(db: Database.Database) {
  const p = (sql: string) => db.prepare(sql);
  return {
    tokenByHash: p('SELECT * FROM api_tokens WHERE token_hash = ?'),
    tokenCount: p('SELECT count(*) FROM api_tokens').pluck(),
    insertToken: p(`INSERT INTO api_tokens (id, token_hash, prefix, account_id, origin, create_time_ms)
                    VALUES (@id, @hash, @prefix, @account, @origin, @now)`),
    upsertConfigured: p(`INSERT INTO api_tokens (id, token_hash, prefix, account_id, origin, create_time_ms)
                    VALUES (@id, @hash, @prefix, @account, 'configured', @now)
                    ON CONFLICT (token_hash) DO UPDATE SET account_id = excluded.account_id, origin = 'configured', prefix = excluded.prefix`),
    configTokens: p(`SELECT token_hash FROM api_tokens WHERE origin = 'configured'`).pluck(),
    deleteToken: p('DELETE FROM api_tokens WHERE token_hash = ?'),
    allTokens: p('SELECT * FROM api_tokens ORDER BY create_time_ms, id'),
    touchToken: p('UPDATE api_tokens SET last_used_ms = ? WHERE id = ?'),
    probe: p(`INSERT INTO meta (key, value) VALUES ('ready_probe', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`),

    policyById: p('SELECT * FROM network_policies WHERE id = ?'),
    policyByName: p('SELECT * FROM network_policies WHERE account_id = ? AND name = ?'),
    insertPolicy: p(`INSERT INTO network_policies (id, account_id, name, description, egress, version, create_time_ms, update_time_ms)
                     VALUES (@id, @account_id, @name, @description, @egress, 1, @create_time_ms, @update_time_ms)`),
    updatePolicy: p(`UPDATE network_policies SET name = @name, description = @description, egress = @egress,
                     version = version + 1, update_time_ms = @update_time_ms WHERE id = @id`),
    deletePolicy: p('DELETE FROM network_policies WHERE id = ?'),

    devboxById: p('SELECT * FROM devboxes WHERE id = ?'),
    running: p(`SELECT * FROM devboxes WHERE status = 'running' ORDER BY id`),
    runningForPolicy: p(`SELECT * FROM devboxes WHERE status = 'running' AND network_policy_id = ? ORDER BY id`),
    insertDevbox: p(`INSERT INTO devboxes (id, account_id, name, status, network_policy_id, addresses, metadata, tunnel_key, password_hash, create_time_ms, end_time_ms)
                     VALUES (@id, @account_id, @name, 'running', @network_policy_id, @addresses, @metadata, @tunnel_key, @password_hash, @create_time_ms, NULL)`),
    updateDevbox: p('UPDATE devboxes SET name = @name, metadata = @metadata, network_policy_id = @network_policy_id WHERE id = @id'),
    shutdownDevbox: p(`UPDATE devboxes SET status = 'shutdown', end_time_ms = ? WHERE id = ?`),
    addressOwner: p('SELECT devbox_id FROM running_addresses WHERE address = ?').pluck(),
    insertAddress: p('INSERT INTO running_addresses (address, devbox_id) VALUES (?, ?)'),
    deleteAddresses: p('DELETE FROM running_addresses WHERE devbox_id = ?'),

    logChange: p('INSERT INTO change_log (kind, id, account_id) VALUES (?, ?, ?)'),
    changesSince: p('SELECT seq, kind, id, account_id FROM change_log WHERE seq > ? ORDER BY seq'),
    maxSeq: p('SELECT coalesce(max(seq), 0) FROM change_log').pluck(),
    pruneLog: p('DELETE FROM change_log WHERE seq < ?'),
  };
}

class SqliteStore implements Store {
  private readonly events = new EventEmitter();
  private lastSeq: number;
  /** change_log rows this process wrote (already announced); the poll skips them. */
  private readonly ownSeqs = new Set<number>();
  private readonly poll: NodeJS.Timeout;
  private closed = false;
  /** Token id → when this process last recorded its use (or tried to). */
  private readonly touched = new Map<string, number>();
  private lastProbe = { at: 0, why: null as string | null };
  /** The storage fault of the last write, until a write succeeds. */
  private writeFault: { at: number; reason: string } | null = null;

  private readonly q: ReturnType<typeof statements>;

  constructor(private readonly db: Database.Database, readonly path: string) {
    this.events.setMaxListeners(0);
    this.q = statements(db);
    this.lastSeq = this.q.maxSeq.get() as number;
    this.poll = setInterval(() => this.followOtherWriters(), CHANGE_POLL_MS);
    this.poll.unref();
  }

  // ── PolicySource ──────────────────────────────────────────────────────────

  getPolicy(id: string): NetworkPolicy | undefined {
    const r = this.q.policyById.get(id) as PolicyRow | undefined;
    return r && toPolicy(r);
  }

  getDevbox(id: string): Devbox | undefined {
    const r = this.q.devboxById.get(id) as DevboxRow | undefined;
    return r && toDevbox(r);
  }

  runningDevboxes(): Devbox[] {
    return (this.q.running.all() as DevboxRow[]).map(toDevbox);
  }

  onChange(listener: (change: SourceChange) => void): () => void {
    this.events.on('change', listener);
    return () => this.events.off('change', listener);
  }

  private emit(change: SourceChange): void {
    this.events.emit('change', change);
  }

  /** Announces writes other processes made to the same file. */
  /** Reads other processes' changes now instead of at the next poll. */
  refresh(): void {
    if (!this.closed) this.followOtherWriters();
  }

  private followOtherWriters(): void {
    if (this.closed) return;
    try {
      const rows = this.q.changesSince.all(this.lastSeq) as { seq: number; kind: 'policy' | 'devbox'; id: string; account_id: string }[];
      for (const r of rows) {
        this.lastSeq = r.seq;
        if (this.ownSeqs.delete(r.seq)) continue;
        this.emit({ kind: r.kind, id: r.id, accountId: r.account_id });
      }
      if (this.lastSeq > 20_000 && this.lastSeq % 1000 < rows.length) this.q.pruneLog.run(this.lastSeq - 10_000);
    } catch {
      // Busy or closing: try again on the next tick.
    }
  }

  /** Runs fn in an IMMEDIATE transaction, then fires the change events it collected. */
  private write<T>(fn: (changes: SourceChange[]) => T): T {
    const changes: SourceChange[] = [];
    const seqs: number[] = [];
    const tx = this.db.transaction(() => {
      changes.length = 0;
      seqs.length = 0;
      const out = fn(changes);
      for (const c of changes) seqs.push(Number(this.q.logChange.run(c.kind, c.id, c.accountId).lastInsertRowid));
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
    for (const s of seqs) if (s > this.lastSeq) this.ownSeqs.add(s);
    for (const c of changes) this.emit(c);
    return out;
  }

  // ── tokens ────────────────────────────────────────────────────────────────

  ensureTokens(configured: readonly ApiToken[]): string | null {
    return this.write(() => {
      const now = Date.now();
      const keep = new Set<string>();
      for (const t of configured) {
        const hash = hashToken(t.token);
        keep.add(hash);
        this.q.upsertConfigured.run({ id: newId('tok_', now), hash, prefix: tokenPrefix(t.token), account: t.accountId, now });
      }
      // The configured tokens are exactly the set given: one taken out stops working, also the last.
      for (const h of this.q.configTokens.all() as string[]) if (!keep.has(h)) this.q.deleteToken.run(h);
      if (configured.length > 0 || (this.q.tokenCount.get() as number) > 0) return null;
      return this.insertToken(DEFAULT_ACCOUNT, 'first-start', now).token;
    });
  }

  private insertToken(accountId: string, origin: TokenOrigin, now: number): { token: string; info: TokenInfo } {
    const token = newToken();
    const row = { id: newId('tok_', now), hash: hashToken(token), prefix: tokenPrefix(token), account: accountId, origin, now };
    this.q.insertToken.run(row);
    return { token, info: { id: row.id, prefix: row.prefix, accountId, origin, createTimeMs: now, lastUsedMs: null } };
  }

  accountForToken(token: string): string | null {
    if (token.length === 0 || token.length > 4096) return null;
    const row = this.q.tokenByHash.get(hashToken(token)) as TokenRow | undefined;
    if (!row) return null;
    this.touch(row);
    return row.account_id;
  }

  /** Records a token's use, at most once a minute; never fails a request (a full disk must not lock the API). */
  private touch(row: TokenRow): void {
    const now = Date.now();
    if (row.last_used_ms !== null && now - row.last_used_ms < TOUCH_EVERY_MS) return;
    if (now - (this.touched.get(row.id) ?? 0) < TOUCH_EVERY_MS) return;
    this.touched.set(row.id, now);
    try {
      this.q.touchToken.run(now, row.id);
    } catch {
      // read-only, full or busy: the time is informational
    }
  }

  listTokens(): TokenInfo[] {
    return (this.q.allTokens.all() as TokenRow[]).map(toTokenInfo);
  }

  createToken(accountId: string): { token: string; info: TokenInfo } {
    return this.write(() => this.insertToken(accountId, 'created', Date.now()));
  }

  revokeToken(ref: string): TokenInfo {
    return this.write(() => {
      const rows = this.q.allTokens.all() as TokenRow[];
      const hash = hashToken(ref);
      const exact = rows.filter((r) => r.id === ref || r.token_hash === hash);
      const matches = exact.length > 0 ? exact
        : ref.length < 4 ? []
          : rows.filter((r) => r.id.startsWith(ref) || (r.prefix !== null && r.prefix.length >= 4 && r.prefix.startsWith(ref)));
      if (matches.length === 0) throw new StoreError('not_found', `no token with id or prefix ${JSON.stringify(ref)}`);
      if (matches.length > 1) {
        throw new StoreError('ambiguous', `${JSON.stringify(ref)} matches ${matches.length} tokens (${matches.map((r) => r.id).join(', ')}); give the id`);
      }
      this.q.deleteToken.run(matches[0]!.token_hash);
      this.touched.delete(matches[0]!.id);
      return toTokenInfo(matches[0]!);
    });
  }

  // ── health ────────────────────────────────────────────────────────────────

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

  // ── policies ──────────────────────────────────────────────────────────────

  getPolicyFor(accountId: string, id: string): NetworkPolicy | undefined {
    const p = this.getPolicy(id);
    return p && p.account_id === accountId ? p : undefined;
  }

  getPolicyByName(accountId: string, name: string): NetworkPolicy | undefined {
    const r = this.q.policyByName.get(accountId, name) as PolicyRow | undefined;
    return r && toPolicy(r);
  }

  private duplicateName(name: string): StoreError {
    return new StoreError('duplicate_name', `a network policy named ${JSON.stringify(name)} already exists in this account; names must be unique`, { name });
  }

  createPolicy(accountId: string, input: PolicyInput): NetworkPolicy {
    return this.write((changes) => {
      if (this.q.policyByName.get(accountId, input.name)) throw this.duplicateName(input.name);
      const now = Date.now();
      const id = newId('npol_', now);
      const egress = completeEgress(DEFAULT_EGRESS, input.egress);
      try {
        this.q.insertPolicy.run({
          id, account_id: accountId, name: input.name, description: input.description ?? null,
          egress: JSON.stringify(egress), create_time_ms: now, update_time_ms: now,
        });
      } catch (e) {
        if (isUniqueViolation(e)) throw this.duplicateName(input.name);
        throw e;
      }
      changes.push({ kind: 'policy', id, accountId });
      return this.getPolicy(id)!;
    });
  }

  updatePolicy(accountId: string, id: string, patch: PolicyPatch): NetworkPolicy {
    return this.write((changes) => {
      const cur = this.getPolicyFor(accountId, id);
      if (!cur) throw new StoreError('not_found', `network policy ${id} not found`);
      const name = patch.name ?? cur.name;
      if (name !== cur.name && this.q.policyByName.get(accountId, name)) throw this.duplicateName(name);
      const egress = completeEgress(cur.egress, patch.egress);
      try {
        this.q.updatePolicy.run({
          id, name,
          description: patch.description === undefined ? cur.description : patch.description,
          egress: JSON.stringify(egress),
          update_time_ms: Math.max(Date.now(), cur.update_time_ms),
        });
      } catch (e) {
        if (isUniqueViolation(e)) throw this.duplicateName(name);
        throw e;
      }
      changes.push({ kind: 'policy', id, accountId });
      return this.getPolicy(id)!;
    });
  }

  deletePolicy(accountId: string, id: string): NetworkPolicy {
    return this.write((changes) => {
      const cur = this.getPolicyFor(accountId, id);
      if (!cur) throw new StoreError('not_found', `network policy ${id} not found`);
      const users = this.devboxesUsingPolicy(id);
      if (users.length > 0) {
        const ids = users.map((d) => d.id);
        throw new StoreError('policy_in_use',
          `network policy ${id} is in use by running devboxes: ${ids.join(', ')}; shut them down or move them to another policy first`,
          { devbox_ids: ids });
      }
      this.q.deletePolicy.run(id);
      changes.push({ kind: 'policy', id, accountId });
      return cur;
    });
  }

  listPolicies(accountId: string, query: PolicyQuery): Page<NetworkPolicy> {
    const where = ['account_id = @account'];
    const params: Record<string, unknown> = { account: accountId };
    if (query.name) {
      where.push('instr(casefold(name), @name) > 0');
      params.name = query.name.toLowerCase();
    }
    if (query.id) {
      where.push('id = @id');
      params.id = query.id;
    }
    return this.page<PolicyRow, NetworkPolicy>('network_policies', where, params, query, toPolicy);
  }

  private page<R, T>(table: string, where: string[], params: Record<string, unknown>, query: PageQuery, map: (r: R) => T): Page<T> {
    const read = this.db.transaction(() => {
      const cond = [...where];
      if (query.startingAfter) {
        cond.push('id > @after');
        params.after = query.startingAfter;
      }
      const rows = this.db.prepare(`SELECT * FROM ${table} WHERE ${cond.join(' AND ')} ORDER BY id LIMIT @lim`)
        .all({ ...params, lim: query.limit + 1 }) as R[];
      const total = query.includeTotalCount === false ? null
        : (this.db.prepare(`SELECT count(*) FROM ${table} WHERE ${where.join(' AND ')}`).pluck().get(params) as number);
      return { rows, total };
    });
    const { rows, total } = read.deferred();
    return { items: rows.slice(0, query.limit).map(map), hasMore: rows.length > query.limit, totalCount: total };
  }

  // ── devboxes ──────────────────────────────────────────────────────────────

  getDevboxFor(accountId: string, id: string): Devbox | undefined {
    const d = this.getDevbox(id);
    return d && d.account_id === accountId ? d : undefined;
  }

  private requirePolicy(accountId: string, policyId: string): void {
    if (!this.getPolicyFor(accountId, policyId)) {
      throw new StoreError('policy_not_found', `launch_parameters.network_policy_id: network policy ${policyId} does not exist in this account`);
    }
  }

  createDevbox(accountId: string, input: DevboxInput): { devbox: Devbox; password: string } {
    const password = randomSecret(24);
    const devbox = this.write((changes) => {
      if (input.networkPolicyId) this.requirePolicy(accountId, input.networkPolicyId);
      const addresses = [...new Set(input.addresses ?? [])];
      for (const a of addresses) {
        const owner = this.q.addressOwner.get(a) as string | undefined;
        if (!owner) continue;
        // Name the owner only to its own account: another account learns nothing but the clash.
        const own = (this.q.devboxById.get(owner) as { account_id: string } | undefined)?.account_id === accountId;
        if (own) throw new StoreError('address_in_use', `network.addresses: ${a} is already the address of running devbox ${owner}`, { address: a, devbox_id: owner });
        throw new StoreError('address_in_use', `network.addresses: ${a} is already in use by a running devbox`, { address: a });
      }
      const now = Date.now();
      const id = newId('dbx_', now);
      this.q.insertDevbox.run({
        id, account_id: accountId, name: input.name ?? null, network_policy_id: input.networkPolicyId ?? null,
        addresses: JSON.stringify(addresses), metadata: JSON.stringify(input.metadata ?? {}),
        tunnel_key: randomAlnum(20), password_hash: hashPassword(password), create_time_ms: now,
      });
      for (const a of addresses) this.q.insertAddress.run(a, id);
      changes.push({ kind: 'devbox', id, accountId });
      return this.getDevbox(id)!;
    });
    return { devbox, password };
  }

  updateDevbox(accountId: string, id: string, patch: DevboxPatch): Devbox {
    return this.write((changes) => {
      const cur = this.getDevboxFor(accountId, id);
      if (!cur) throw new StoreError('not_found', `devbox ${id} not found`);
      if (patch.networkPolicyId) this.requirePolicy(accountId, patch.networkPolicyId);
      this.q.updateDevbox.run({
        id,
        name: patch.name === undefined ? cur.name : patch.name,
        metadata: JSON.stringify(patch.metadata ?? cur.metadata),
        network_policy_id: patch.networkPolicyId === undefined ? cur.network_policy_id : patch.networkPolicyId,
      });
      changes.push({ kind: 'devbox', id, accountId });
      return this.getDevbox(id)!;
    });
  }

  shutdownDevbox(accountId: string, id: string): Devbox {
    return this.write((changes) => {
      const cur = this.getDevboxFor(accountId, id);
      if (!cur) throw new StoreError('not_found', `devbox ${id} not found`);
      if (cur.status === 'shutdown') return cur;
      this.q.shutdownDevbox.run(Date.now(), id);
      this.q.deleteAddresses.run(id);
      changes.push({ kind: 'devbox', id, accountId });
      return this.getDevbox(id)!;
    });
  }

  listDevboxes(accountId: string, query: DevboxQuery): Page<Devbox> {
    const where = ['account_id = @account'];
    const params: Record<string, unknown> = { account: accountId };
    if (query.status) {
      where.push('status = @status');
      params.status = query.status;
    }
    return this.page<DevboxRow, Devbox>('devboxes', where, params, query, toDevbox);
  }

  devboxesUsingPolicy(policyId: string): Devbox[] {
    return (this.q.runningForPolicy.all(policyId) as DevboxRow[]).map(toDevbox);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.poll);
    this.events.removeAllListeners();
    this.db.close();
  }
}
