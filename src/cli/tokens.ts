/**
 * `egress-gateway tokens list|create|revoke` — the API tokens in the store.
 *
 *   tokens list [--json]                     id, prefix, account, origin, created, last used
 *   tokens create [--account ID] [--json]    a new token, printed once (stdout), stored as a hash
 *   tokens revoke ID|PREFIX|TOKEN            deletes one token; the API refuses it at once
 *
 * Reaches the store the way `check` does: it opens the sqlite file (`--db`, or the
 * settings of `--config`/env) directly. SQLite in WAL mode lets it write while `serve`
 * runs; the gateway reads the token table on every API request (no cache), so a revoked
 * token gets 401 from its next request on, in this and every other process on the file.
 * Exit code: 0 done, 1 no such token, 2 usage or store problem.
 */
import { existsSync } from 'node:fs';
import { ConfigError, loadConfig } from '../config.js';
import { DEFAULT_ACCOUNT, StoreError, type TokenInfo } from '../store/index.js';
import type { ControlStore } from '../store/backend.js';

export type TokensAction = 'list' | 'create' | 'revoke';

export interface TokensOptions {
  db: string;
  /** create: the account the token acts for. */
  account?: string;
  /** revoke: an id, an id prefix, the prefix `list` shows, or the whole token. */
  ref?: string;
  json?: boolean;
}

export interface Output {
  out(text: string): void;
  err(text: string): void;
}

const stdio: Output = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };
const USAGE = 'usage: egress-gateway tokens list [--json] | create [--account ID] [--json] | revoke ID|PREFIX|TOKEN   [--db PATH]';

class UsageError extends Error {}

const iso = (ms: number | null) => (ms === null ? 'never' : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z'));

function jsonView(t: TokenInfo) {
  return { id: t.id, prefix: t.prefix, account_id: t.accountId, origin: t.origin, create_time_ms: t.createTimeMs, last_used_ms: t.lastUsedMs };
}

function table(tokens: readonly TokenInfo[]): string {
  const rows = [['ID', 'PREFIX', 'ACCOUNT', 'ORIGIN', 'CREATED', 'LAST USED'], ...tokens.map((t) => [t.id, t.prefix === null ? '-' : `${t.prefix}…`, t.accountId, t.origin, iso(t.createTimeMs), iso(t.lastUsedMs)])];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

function checkAccount(account: string): string {
  if (account.trim().length === 0 || account.length > 256 || /[\u0000-\u001f\u007f\s]/.test(account)) {
    throw new UsageError(`--account ${JSON.stringify(account)}: give an account id (1-256 characters, no spaces or control characters)`);
  }
  return account;
}

async function open(db: string, create: boolean): Promise<ControlStore> {
  const { isPostgresUrl } = await import('../store/backend.js');
  if (!create && !isPostgresUrl(db) && !existsSync(db)) throw new UsageError(`no store at ${db} (give --db PATH, or the --config the gateway runs with)`);
  const { openControlStore } = await import('../store/open.js');
  return openControlStore(db, { writable: create, connections: 1 });
}

/** Runs one action against the store file; returns the exit code. */
export async function runTokens(action: TokensAction, opts: TokensOptions, io: Output = stdio): Promise<number> {
  const store = await open(opts.db, action !== 'list');
  try {
    switch (action) {
      case 'list': {
        const tokens = await store.tokens.list();
        if (opts.json) io.out(`${JSON.stringify(tokens.map(jsonView))}\n`);
        else if (tokens.length === 0) io.err(`no API tokens in ${opts.db}\n`);
        else io.out(table(tokens));
        return 0;
      }
      case 'create': {
        const { token, info } = await store.tokens.create(checkAccount(opts.account ?? DEFAULT_ACCOUNT));
        if (opts.json) io.out(`${JSON.stringify({ ...jsonView(info), token })}\n`);
        else {
          io.err(`Created API token ${info.id} for account "${info.accountId}" (shown once, stored only as a hash):\n`);
          io.out(`${token}\n`);
        }
        return 0;
      }
      case 'revoke': {
        if (!opts.ref) throw new UsageError('give the id, prefix or token to revoke');
        const t = await store.tokens.revoke(opts.ref);
        io.out(`revoked ${t.id} (${t.prefix === null ? 'no prefix' : `${t.prefix}…`}, account ${t.accountId}, ${t.origin})\n`);
        if (t.origin === 'configured') {
          io.err('note: this token is configured (--api-token / EGRESS_API_TOKENS / config file): remove it there too, or the next start restores it\n');
        }
        return 0;
      }
    }
  } catch (e) {
    if (e instanceof StoreError) {
      io.err(`egress-gateway tokens: ${e.message}\n`);
      return e.code === 'not_found' ? 1 : 2;
    }
    throw e;
  } finally {
    await store.close();
  }
}

/** The `tokens` command as today's argv dispatch calls it. */
export async function tokensCommand(flags: Map<string, string[]>, positional: string[]): Promise<void> {
  const [action, ref, ...extra] = positional;
  try {
    if (action !== 'list' && action !== 'create' && action !== 'revoke') throw new UsageError(action ? `unknown action "${action}"` : 'give an action');
    if (extra.length > 0 || (action !== 'revoke' && ref !== undefined)) throw new UsageError(`unexpected argument "${extra[0] ?? ref}"`);
    const config = loadConfig(flags);
    process.exitCode = await runTokens(action, { db: config.db, account: flags.get('account')?.at(-1), ref, json: flags.has('json') });
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`egress-gateway tokens: ${e.message}\n${USAGE}\n`);
      process.exitCode = 2;
      return;
    }
    if (e instanceof ConfigError) {
      process.stderr.write(`egress-gateway tokens: ${e.message}\n`);
      process.exitCode = 2;
      return;
    }
    throw e;
  }
}
