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
import { EventEmitter } from 'node:events';
import Database from 'better-sqlite3';
import { ConfigError } from '../config.js';
import { type Devbox, type EgressRules, type NetworkPolicy, DEFAULT_EGRESS, LIST_FIELDS, completeEgress, entryCount } from '../policy/model.js';
import type { PolicySource, SourceChange } from '../policy/source.js';
import { hashPassword } from '../policy/password.js';
import { migrate } from './migrations.js';
import { type Blueprint, type BlueprintRow, type BlueprintStatus, type FailureReason, ACTIVE_BUILD, buildRuntime, canMove, toBlueprint } from './blueprints.js';
import { newId, randomAlnum, randomSecret } from './ids.js';
import type { ChangeRecord } from './change-feed.js';
import { checkPolicyFits } from './entry-limit.js';
import { type DevboxRow, type PolicyRow, type TokenRow, toDevbox, toPolicy, toTokenInfo } from './rows.js';

export * from './types.js';
import {
  type BlueprintInput,
  type BlueprintQuery,
  type ConfiguredToken,
  type DenialEvent,
  type DenialEventBatchRow,
  type DenialEventQuery,
  type DenialLimits,
  type DevboxInput,
  type DevboxPatch,
  type DevboxQuery,
  type Page,
  type PageQuery,
  type PolicyInput,
  type PolicyPatch,
  type PolicyQuery,
  type Quotas,
  type TokenInfo,
  type TokenOrigin,
  DEFAULT_ACCOUNT,
  StoreError,
  addressUnavailable,
  hashToken,
  rowBytes,
  storageFault,
  tokenPrefix,
} from './types.js';

export interface Store extends PolicySource, SyncChangeFeed {
  readonly path: string;
  /** Limits what each account may store from now on (checked in each write's transaction). */
  setQuotas(q: Quotas | null): void;
  /** Reads other processes' changes now instead of at the next poll. */
  refresh(): void;
  /**
   * Makes the configured tokens exactly the set given (a configured token no longer given
   * is deleted, also when none are given); with none configured and none stored, creates
   * a first-start token for account `default` and returns it.
   */
  ensureTokens(configured: readonly ConfiguredToken[]): string | null;
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

  createBlueprint(accountId: string, input: BlueprintInput): Blueprint;
  getBlueprintFor(accountId: string, id: string): Blueprint | undefined;
  listBlueprints(accountId: string, query: BlueprintQuery): Page<Blueprint>;
  /** Moves a build along (the build orchestrator reports it); leaving the active steps frees its addresses. */
  setBlueprintStatus(accountId: string, id: string, status: BlueprintStatus, failureReason?: FailureReason | null): Blueprint;
  deleteBlueprint(accountId: string, id: string): Blueprint;

  /** The denial record's batch write (see DenialRecorder); throws when the file is busy. */
  writeDenialEvents(rows: readonly DenialEventBatchRow[], limits: DenialLimits): void;
  listDenialEvents(accountId: string, query: DenialEventQuery): Page<DenialEvent>;

  close(): void;
}

/** The change feed, read synchronously (the sqlite store; wrapped in promises for ChangeFeed). */
export interface SyncChangeFeed {
  changesSince(after: number, limit: number): ChangeRecord[];
  lastSeq(): number;
  snapshot(): { seq: number; policies: NetworkPolicy[]; devboxes: Devbox[] };
}

const CHANGE_POLL_MS = 500;
/** Change records kept behind the newest (the change feed's window). */
export const CHANGE_LOG_KEEP = 10_000;

const newToken = () => `egw_${randomSecret(32)}`;
const TOUCH_EVERY_MS = 60_000;
const PROBE_EVERY_MS = 1000;
/** How long a write that failed on storage keeps /readyz unready, unless a write succeeds first. */
const WRITE_FAULT_HOLD_MS = 10_000;

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

function isUniqueViolation(e: unknown): boolean {
  const code = (e as { code?: string }).code;
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

export interface OpenOptions {
  /** Refuse (ConfigError) unless a write commits now: for `serve` and `tokens create|revoke`. */
  writable?: boolean;
  /** Change records kept behind the newest (default CHANGE_LOG_KEEP). */
  changeLogKeep?: number;
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
  const store = new SqliteStore(db, file, opts.changeLogKeep);
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
    insertPolicy: p(`INSERT INTO network_policies (id, account_id, name, description, egress, enforcement, version, create_time_ms, update_time_ms)
                     VALUES (@id, @account_id, @name, @description, @egress, @enforcement, 1, @create_time_ms, @update_time_ms)`),
    updatePolicy: p(`UPDATE network_policies SET name = @name, description = @description, egress = @egress, enforcement = @enforcement,
                     version = version + 1, update_time_ms = @update_time_ms WHERE id = @id`),
    deletePolicy: p('DELETE FROM network_policies WHERE id = ?'),

    devboxById: p('SELECT * FROM devboxes WHERE id = ?'),
    running: p(`SELECT * FROM devboxes WHERE status = 'running' ORDER BY id`),
    runningForPolicy: p(`SELECT * FROM devboxes WHERE status = 'running' AND network_policy_id = ? ORDER BY id`),
    insertDevbox: p(`INSERT INTO devboxes (id, account_id, name, status, network_policy_id, addresses, metadata, tunnel_key, password_hash, create_time_ms, end_time_ms, blueprint_id, host_id)
                     VALUES (@id, @account_id, @name, 'running', @network_policy_id, @addresses, @metadata, @tunnel_key, @password_hash, @create_time_ms, NULL, @blueprint_id, @host_id)`),
    updateDevbox: p('UPDATE devboxes SET name = @name, metadata = @metadata, network_policy_id = @network_policy_id WHERE id = @id'),
    shutdownDevbox: p(`UPDATE devboxes SET status = 'shutdown', end_time_ms = ? WHERE id = ?`),
    addressOwner: p(`SELECT devbox_id FROM running_addresses WHERE address = @a
                     UNION ALL SELECT blueprint_id FROM build_addresses WHERE address = @a`).pluck(),
    blueprintById: p('SELECT * FROM blueprints WHERE id = ?'),
    activeBuilds: p(`SELECT * FROM blueprints WHERE status IN ('queued', 'provisioning', 'building') ORDER BY id`),
    activeBuildsForPolicy: p(`SELECT id FROM blueprints WHERE status IN ('queued', 'provisioning', 'building') AND network_policy_id = ? ORDER BY id`).pluck(),
    insertBlueprint: p(`INSERT INTO blueprints (id, account_id, name, status, failure_reason, network_policy_id, launch_network_policy_id, addresses, metadata, parameters, password_hash, create_time_ms, build_finish_time_ms)
                        VALUES (@id, @account_id, @name, 'queued', NULL, @network_policy_id, @launch_network_policy_id, @addresses, @metadata, @parameters, @password_hash, @create_time_ms, NULL)`),
    setBlueprintStatus: p('UPDATE blueprints SET status = @status, failure_reason = @failure_reason, build_finish_time_ms = @finish WHERE id = @id'),
    deleteBlueprint: p('DELETE FROM blueprints WHERE id = ?'),
    insertBuildAddress: p('INSERT INTO build_addresses (address, blueprint_id) VALUES (?, ?)'),
    deleteBuildAddresses: p('DELETE FROM build_addresses WHERE blueprint_id = ?'),
    insertAddress: p('INSERT INTO running_addresses (address, devbox_id) VALUES (?, ?)'),
    deleteAddresses: p('DELETE FROM running_addresses WHERE devbox_id = ?'),

    policyCount: p('SELECT count(*) FROM network_policies WHERE account_id = ?').pluck(),
    accountEntries: p(`SELECT coalesce(sum(${LIST_FIELDS.map((f) => `coalesce(json_array_length(egress, '$.${f}'), 0)`).join(' + ')}), 0)
                       FROM network_policies WHERE account_id = ? AND id IS NOT ?`).pluck(),
    runningCount: p(`SELECT count(*) FROM devboxes WHERE account_id = ? AND status = 'running'`).pluck(),
    addressCount: p(`SELECT count(*) FROM running_addresses r JOIN devboxes d ON d.id = r.devbox_id WHERE d.account_id = ?`).pluck(),
    logChange: p('INSERT INTO change_log (kind, id, account_id, value, host_id) VALUES (?, ?, ?, ?, ?)'),
    changesSince: p('SELECT seq, kind, id, account_id FROM change_log WHERE seq > ? ORDER BY seq'),
    feedSince: p('SELECT seq, kind, id, account_id, value, host_id FROM change_log WHERE seq > ? ORDER BY seq LIMIT ?'),
    maxSeq: p('SELECT coalesce(max(seq), 0) FROM change_log').pluck(),
    pruneLog: p('DELETE FROM change_log WHERE seq <= ?'),
    allPolicies: p('SELECT * FROM network_policies ORDER BY id'),
  };
}

/** The denial record's writer, on a connection of its own (see SqliteStore.writeDenialEvents). */
function eventStatements(path: string, main: Database.Database) {
  const db = path === ':memory:' ? main : new Database(path, { timeout: 50 });
  if (db !== main) {
    db.pragma('busy_timeout = 50');
    db.pragma('synchronous = NORMAL');
  }
  const upsert = db.prepare(`INSERT INTO egress_events (id, account_id, devbox_id, policy_id, host, port, door, reason, decision, count, first_seen_ms, last_seen_ms)
    VALUES (@id, @accountId, @devboxId, @policyId, @host, @port, @door, @reason, @decision, @count, @firstSeenMs, @lastSeenMs)
    ON CONFLICT (devbox_id, host, port, door, reason, decision) DO UPDATE SET
      count = count + excluded.count, last_seen_ms = max(last_seen_ms, excluded.last_seen_ms), policy_id = excluded.policy_id`);
  const expire = db.prepare('DELETE FROM egress_events WHERE last_seen_ms < ?');
  const cap = db.prepare(`DELETE FROM egress_events WHERE devbox_id = @devbox AND id NOT IN
    (SELECT id FROM egress_events WHERE devbox_id = @devbox ORDER BY last_seen_ms DESC, id DESC LIMIT @keep)`);
  const tx = db.transaction((rows: readonly DenialEventBatchRow[], limits: DenialLimits) => {
    const devboxes = new Set<string>();
    for (const r of rows) {
      upsert.run({ ...r, id: newId('evt_', r.firstSeenMs) });
      devboxes.add(r.devboxId);
    }
    expire.run(limits.now - limits.retentionMs);
    for (const d of devboxes) cap.run({ devbox: d, keep: limits.maxPerDevbox });
  });
  return {
    write: (rows: readonly DenialEventBatchRow[], limits: DenialLimits) => tx.immediate(rows, limits),
    close: () => {
      if (db !== main) db.close();
    },
  };
}

/** A list's WHERE: the account's rows, and a case-insensitive substring of the name when asked. */
function accountFilter(accountId: string, name: string | null | undefined): { where: string[]; params: Record<string, unknown> } {
  const where = ['account_id = @account'];
  const params: Record<string, unknown> = { account: accountId };
  if (name) {
    where.push('instr(casefold(name), @name) > 0');
    params.name = name.toLowerCase();
  }
  return { where, params };
}

class SqliteStore implements Store {
  private readonly events = new EventEmitter();
  private followedSeq: number;
  /** change_log rows this process wrote (already announced); the poll skips them. */
  private readonly ownSeqs = new Set<number>();
  private readonly poll: NodeJS.Timeout;
  private closed = false;
  private quotas: Quotas | null = null;
  /** Token id → when this process last recorded its use (or tried to). */
  private readonly touched = new Map<string, number>();
  private lastProbe = { at: 0, why: null as string | null };
  /** The storage fault of the last write, until a write succeeds. */
  private writeFault: { at: number; reason: string } | null = null;

  private readonly q: ReturnType<typeof statements>;

  constructor(
    private readonly db: Database.Database,
    readonly path: string,
    private readonly changeLogKeep: number = CHANGE_LOG_KEEP,
  ) {
    this.events.setMaxListeners(0);
    this.q = statements(db);
    this.followedSeq = this.q.maxSeq.get() as number;
    this.poll = setInterval(() => this.followOtherWriters(), CHANGE_POLL_MS);
    this.poll.unref();
  }

  // ── PolicySource ──────────────────────────────────────────────────────────

  getPolicy(id: string): NetworkPolicy | undefined {
    const r = this.q.policyById.get(id) as PolicyRow | undefined;
    return r && toPolicy(r);
  }

  /** A devbox, or a blueprint build as the engine sees it (running while the build is active). */
  getDevbox(id: string): Devbox | undefined {
    if (id.startsWith('bpt_')) {
      const b = this.q.blueprintById.get(id) as BlueprintRow | undefined;
      return b && buildRuntime(toBlueprint(b));
    }
    return this.devboxRow(id);
  }

  private devboxRow(id: string): Devbox | undefined {
    const r = this.q.devboxById.get(id) as DevboxRow | undefined;
    return r && toDevbox(r);
  }

  runningDevboxes(): Devbox[] {
    const builds = (this.q.activeBuilds.all() as BlueprintRow[]).map((b) => buildRuntime(toBlueprint(b)));
    return [...(this.q.running.all() as DevboxRow[]).map(toDevbox), ...builds];
  }

  onChange(listener: (change: SourceChange) => void): () => void {
    this.events.on('change', listener);
    return () => this.events.off('change', listener);
  }

  private emit(change: SourceChange): void {
    this.events.emit('change', change);
  }

  /** Reads other processes' changes now instead of at the next poll. */
  refresh(): void {
    if (!this.closed) this.followOtherWriters();
  }

  private followOtherWriters(): void {
    if (this.closed) return;
    try {
      const rows = this.q.changesSince.all(this.followedSeq) as { seq: number; kind: 'policy' | 'devbox'; id: string; account_id: string }[];
      for (const r of rows) {
        this.followedSeq = r.seq;
        if (this.ownSeqs.delete(r.seq)) continue;
        this.emit({ kind: r.kind, id: r.id, accountId: r.account_id });
      }
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
      for (const c of changes) {
        const value = c.kind === 'policy' ? this.getPolicy(c.id) : this.getDevbox(c.id);
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
    for (const c of changes) this.emit(c);
    return out;
  }

  setQuotas(q: Quotas | null): void {
    this.quotas = q;
  }

  private quotaExceeded(quota: string, setting: string, limit: number, what: string): StoreError {
    return new StoreError('quota_exceeded', `quota ${quota} exceeded: ${what}; the limit is ${limit} (--${setting})`, { quota, limit });
  }

  /** Entries a policy's egress holds (the sum of its list fields). */
  private static entries(e: Partial<EgressRules>): number {
    return entryCount(e);
  }

  /** Checks the policy quotas for `egress` becoming policy `id` (new when absent). */
  private checkPolicyQuotas(accountId: string, id: string | null, egress: EgressRules): void {
    const q = this.quotas;
    if (q === null) return;
    if (id === null && (this.q.policyCount.get(accountId) as number) >= q.policiesPerAccount) {
      throw this.quotaExceeded('policies_per_account', 'max-policies-per-account', q.policiesPerAccount, 'this account already holds that many network policies');
    }
    const mine = SqliteStore.entries(egress);
    if (mine > q.entriesPerPolicy) {
      throw this.quotaExceeded('entries_per_policy', 'max-entries-per-policy', q.entriesPerPolicy, `the policy would hold ${mine} ${LIST_FIELDS.join(' and ')} entries`);
    }
    const total = mine + (this.q.accountEntries.get(accountId, id) as number);
    if (total > q.entriesPerAccount) {
      throw this.quotaExceeded('entries_per_account', 'max-entries-per-account', q.entriesPerAccount, `this account's policies would hold ${total} entries`);
    }
  }

  private checkDevboxQuotas(accountId: string, addresses: number): void {
    const q = this.quotas;
    if (q === null) return;
    if ((this.q.runningCount.get(accountId) as number) >= q.devboxesPerAccount) {
      throw this.quotaExceeded('devboxes_per_account', 'max-devboxes-per-account', q.devboxesPerAccount, 'this account already has that many running devboxes');
    }
    const held = this.q.addressCount.get(accountId) as number;
    if (held + addresses > q.addressesPerAccount) {
      throw this.quotaExceeded('addresses_per_account', 'max-addresses-per-account', q.addressesPerAccount, `this account's running devboxes would hold ${held + addresses} addresses`);
    }
  }

  // ── tokens ────────────────────────────────────────────────────────────────

  ensureTokens(configured: readonly ConfiguredToken[]): string | null {
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
      const matches = exact.length > 0 ? exact : ref.length < 4 ? [] : rows.filter((r) => r.id.startsWith(ref) || (r.prefix !== null && r.prefix.length >= 4 && r.prefix.startsWith(ref)));
      if (matches.length === 0) throw new StoreError('not_found', `no token with id or prefix ${JSON.stringify(ref)}`);
      if (matches.length > 1) {
        throw new StoreError('ambiguous', `${JSON.stringify(ref)} matches ${matches.length} tokens (${matches.map((r) => r.id).join(', ')}); give the id`);
      }
      this.q.deleteToken.run(matches[0]!.token_hash);
      this.touched.delete(matches[0]!.id);
      return toTokenInfo(matches[0]!);
    });
  }

  // ── change feed ───────────────────────────────────────────────────────────

  changesSince(after: number, limit: number): ChangeRecord[] {
    const rows = this.q.feedSince.all(after, limit) as { seq: number; kind: 'policy' | 'devbox'; id: string; account_id: string; value: string | null; host_id: string | null }[];
    return rows.map((r) =>
      r.kind === 'policy'
        ? { seq: r.seq, kind: 'policy', id: r.id, accountId: r.account_id, value: r.value === null ? null : (JSON.parse(r.value) as NetworkPolicy) }
        : { seq: r.seq, kind: 'devbox', id: r.id, accountId: r.account_id, hostId: r.host_id, value: r.value === null ? null : (JSON.parse(r.value) as Devbox) },
    );
  }

  lastSeq(): number {
    return this.q.maxSeq.get() as number;
  }

  snapshot(): { seq: number; policies: NetworkPolicy[]; devboxes: Devbox[] } {
    const read = this.db.transaction(() => ({
      seq: this.q.maxSeq.get() as number,
      policies: (this.q.allPolicies.all() as PolicyRow[]).map(toPolicy),
      devboxes: this.runningDevboxes(),
    }));
    return read.deferred();
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
      this.checkPolicyQuotas(accountId, null, egress);
      try {
        this.q.insertPolicy.run({
          id,
          account_id: accountId,
          name: input.name,
          description: input.description ?? null,
          egress: JSON.stringify(egress),
          enforcement: input.enforcement ?? 'enforce',
          create_time_ms: now,
          update_time_ms: now,
        });
      } catch (e) {
        if (isUniqueViolation(e)) throw this.duplicateName(input.name);
        throw e;
      }
      const p = this.getPolicy(id)!;
      checkPolicyFits(p);
      changes.push({ kind: 'policy', id, accountId });
      return p;
    });
  }

  updatePolicy(accountId: string, id: string, patch: PolicyPatch): NetworkPolicy {
    return this.write((changes) => {
      const cur = this.getPolicyFor(accountId, id);
      if (!cur) throw new StoreError('not_found', `network policy ${id} not found`);
      const name = patch.name ?? cur.name;
      if (name !== cur.name && this.q.policyByName.get(accountId, name)) throw this.duplicateName(name);
      const egress = completeEgress(cur.egress, patch.egress);
      this.checkPolicyQuotas(accountId, id, egress);
      try {
        this.q.updatePolicy.run({
          id,
          name,
          description: patch.description === undefined ? cur.description : patch.description,
          egress: JSON.stringify(egress),
          enforcement: patch.enforcement ?? cur.enforcement,
          update_time_ms: Math.max(Date.now(), cur.update_time_ms),
        });
      } catch (e) {
        if (isUniqueViolation(e)) throw this.duplicateName(name);
        throw e;
      }
      const p = this.getPolicy(id)!;
      checkPolicyFits(p);
      changes.push({ kind: 'policy', id, accountId });
      return p;
    });
  }

  deletePolicy(accountId: string, id: string): NetworkPolicy {
    return this.write((changes) => {
      const cur = this.getPolicyFor(accountId, id);
      if (!cur) throw new StoreError('not_found', `network policy ${id} not found`);
      const users = this.devboxesUsingPolicy(id);
      const builds = this.q.activeBuildsForPolicy.all(id) as string[];
      if (users.length > 0 || builds.length > 0) {
        const ids = [...users.map((d) => d.id), ...builds];
        throw new StoreError('policy_in_use', `network policy ${id} is in use by running devboxes or active blueprint builds: ${ids.join(', ')}; shut them down or move them to another policy first`, { devbox_ids: ids });
      }
      this.q.deletePolicy.run(id);
      changes.push({ kind: 'policy', id, accountId });
      return cur;
    });
  }

  listPolicies(accountId: string, query: PolicyQuery): Page<NetworkPolicy> {
    const { where, params } = accountFilter(accountId, query.name);
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
      const rows: R[] = [];
      let bytes = 0;
      let cut = false;
      for (const r of this.db.prepare(`SELECT * FROM ${table} WHERE ${cond.join(' AND ')} ORDER BY id LIMIT @lim`).iterate({ ...params, lim: query.limit + 1 }) as IterableIterator<R>) {
        if (rows.length < query.limit && query.maxBytes !== undefined) {
          bytes += rowBytes(r);
          if (rows.length > 0 && bytes > query.maxBytes) {
            cut = true;
            break;
          }
        }
        rows.push(r);
      }
      const total =
        query.includeTotalCount === false
          ? null
          : (this.db
              .prepare(`SELECT count(*) FROM ${table} WHERE ${where.join(' AND ')}`)
              .pluck()
              .get(params) as number);
      return { rows, total, cut };
    });
    const { rows, total, cut } = read.deferred();
    return { items: rows.slice(0, query.limit).map(map), hasMore: cut || rows.length > query.limit, totalCount: total };
  }

  // ── devboxes ──────────────────────────────────────────────────────────────

  getDevboxFor(accountId: string, id: string): Devbox | undefined {
    const d = this.devboxRow(id);
    return d && d.account_id === accountId ? d : undefined;
  }

  private requirePolicy(accountId: string, policyId: string): void {
    if (!this.getPolicyFor(accountId, policyId)) {
      throw new StoreError('policy_not_found', `launch_parameters.network_policy_id: network policy ${policyId} does not exist in this account`);
    }
  }

  /** The addresses, deduplicated, if no running devbox or active build holds one of them. */
  private freeAddresses(accountId: string, wanted: readonly string[]): string[] {
    const addresses = [...new Set(wanted)];
    for (const a of addresses) {
      const owner = this.q.addressOwner.get({ a }) as string | undefined;
      if (!owner) continue;
      const build = owner.startsWith('bpt_');
      const ownerAccount = build ? (this.q.blueprintById.get(owner) as { account_id: string } | undefined)?.account_id : (this.q.devboxById.get(owner) as { account_id: string } | undefined)?.account_id;
      // Name the owner only to its own account; another account gets the words a reserved
      // address gets, which neither say whose it is nor that a devbox there is running.
      if (ownerAccount !== accountId) throw addressUnavailable(a);
      throw new StoreError('address_in_use', `network.addresses: ${a} is already the address of ${build ? 'blueprint build' : 'running devbox'} ${owner}`, { address: a, devbox_id: owner });
    }
    return addresses;
  }

  /** The policy a devbox created from a blueprint gets: its own if named, else the blueprint's launch policy. */
  private launchPolicy(accountId: string, input: DevboxInput): string | null {
    if (input.networkPolicyId) return input.networkPolicyId;
    if (!input.blueprintId) return null;
    const b = this.getBlueprintFor(accountId, input.blueprintId);
    if (!b) throw new StoreError('blueprint_not_found', `blueprint_id: blueprint ${input.blueprintId} does not exist in this account`);
    if (b.status !== 'build_complete') throw new StoreError('blueprint_not_ready', `blueprint_id: blueprint ${b.id} is not built (status ${b.status})`);
    return b.launch_network_policy_id;
  }

  createDevbox(accountId: string, input: DevboxInput): { devbox: Devbox; password: string } {
    const password = randomSecret(24);
    const devbox = this.write((changes) => {
      const policyId = this.launchPolicy(accountId, input);
      if (policyId) this.requirePolicy(accountId, policyId);
      const addresses = this.freeAddresses(accountId, input.addresses ?? []);
      this.checkDevboxQuotas(accountId, addresses.length);
      const now = Date.now();
      const id = newId('dbx_', now);
      this.q.insertDevbox.run({
        id,
        account_id: accountId,
        name: input.name ?? null,
        network_policy_id: policyId,
        addresses: JSON.stringify(addresses),
        metadata: JSON.stringify(input.metadata ?? {}),
        tunnel_key: randomAlnum(20),
        password_hash: hashPassword(password),
        create_time_ms: now,
        blueprint_id: input.blueprintId ?? null,
        host_id: input.hostId ?? null,
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
    if (query.hostId) {
      where.push('host_id = @host');
      params.host = query.hostId;
    }
    return this.page<DevboxRow, Devbox>('devboxes', where, params, query, toDevbox);
  }

  devboxesUsingPolicy(policyId: string): Devbox[] {
    return (this.q.runningForPolicy.all(policyId) as DevboxRow[]).map(toDevbox);
  }

  // ── blueprints ────────────────────────────────────────────────────────────

  getBlueprintFor(accountId: string, id: string): Blueprint | undefined {
    const r = this.q.blueprintById.get(id) as BlueprintRow | undefined;
    return r && r.account_id === accountId ? toBlueprint(r) : undefined;
  }

  createBlueprint(accountId: string, input: BlueprintInput): Blueprint {
    return this.write((changes) => {
      for (const [field, pid] of [
        ['network_policy_id', input.networkPolicyId],
        ['launch_parameters.network_policy_id', input.launchNetworkPolicyId],
      ] as const) {
        if (pid && !this.getPolicyFor(accountId, pid)) throw new StoreError('policy_not_found', `${field}: network policy ${pid} does not exist in this account`);
      }
      const addresses = this.freeAddresses(accountId, input.addresses ?? []);
      const now = Date.now();
      const id = newId('bpt_', now);
      this.q.insertBlueprint.run({
        id,
        account_id: accountId,
        name: input.name,
        network_policy_id: input.networkPolicyId ?? null,
        launch_network_policy_id: input.launchNetworkPolicyId ?? null,
        addresses: JSON.stringify(addresses),
        metadata: JSON.stringify(input.metadata ?? {}),
        parameters: JSON.stringify(input.parameters),
        password_hash: hashPassword(randomSecret(24)),
        create_time_ms: now,
      });
      for (const a of addresses) this.q.insertBuildAddress.run(a, id);
      changes.push({ kind: 'devbox', id, accountId });
      return this.getBlueprintFor(accountId, id)!;
    });
  }

  setBlueprintStatus(accountId: string, id: string, status: BlueprintStatus, failureReason: FailureReason | null = null): Blueprint {
    return this.write((changes) => {
      const cur = this.getBlueprintFor(accountId, id);
      if (!cur) throw new StoreError('not_found', `blueprint ${id} not found`);
      if (cur.status === status) return cur;
      if (!canMove(cur.status, status)) throw new StoreError('invalid_transition', `status: a build cannot go from ${cur.status} to ${status}`);
      const done = !ACTIVE_BUILD.has(status);
      this.q.setBlueprintStatus.run({ id, status, failure_reason: status === 'failed' ? (failureReason ?? 'build_failed') : null, finish: done ? Date.now() : null });
      if (done) this.q.deleteBuildAddresses.run(id);
      changes.push({ kind: 'devbox', id, accountId });
      return this.getBlueprintFor(accountId, id)!;
    });
  }

  deleteBlueprint(accountId: string, id: string): Blueprint {
    return this.write((changes) => {
      const cur = this.getBlueprintFor(accountId, id);
      if (!cur) throw new StoreError('not_found', `blueprint ${id} not found`);
      this.q.deleteBlueprint.run(id); // its build addresses go with it (ON DELETE CASCADE)
      changes.push({ kind: 'devbox', id, accountId });
      return cur;
    });
  }

  listBlueprints(accountId: string, query: BlueprintQuery): Page<Blueprint> {
    const { where, params } = accountFilter(accountId, query.name);
    if (query.status) {
      where.push('status = @status');
      params.status = query.status;
    }
    return this.page<BlueprintRow, Blueprint>('blueprints', where, params, query, toBlueprint);
  }

  // ── denial record ─────────────────────────────────────────────────────────

  /**
   * Its own connection with a short busy timeout: the batch is written from the event loop,
   * so it must not wait seconds for another process's write lock (the recorder retries later).
   */
  private eventsWriter: ReturnType<typeof eventStatements> | null = null;

  writeDenialEvents(rows: readonly DenialEventBatchRow[], limits: DenialLimits): void {
    if (this.closed) throw new Error('store closed');
    const w = (this.eventsWriter ??= eventStatements(this.path, this.db));
    w.write(rows, limits);
  }

  listDenialEvents(accountId: string, query: DenialEventQuery): Page<DenialEvent> {
    const where = ['account_id = @account'];
    const params: Record<string, unknown> = { account: accountId };
    if (query.devboxId) {
      where.push('devbox_id = @devbox');
      params.devbox = query.devboxId;
    }
    if (query.decision) {
      where.push('decision = @decision');
      params.decision = query.decision;
    }
    if (query.sinceMs != null) {
      where.push('last_seen_ms >= @since');
      params.since = query.sinceMs;
    }
    return this.page<DenialEvent, DenialEvent>('egress_events', where, params, query, (r) => r);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.eventsWriter?.close();
    clearInterval(this.poll);
    this.events.removeAllListeners();
    this.db.close();
  }
}
