/**
 * Opens the store a `--db` value names: a sqlite file (the embedded default) or, for a
 * `postgres://` / `postgresql://` URL, the control plane on PostgreSQL. Two views of it:
 * - openControlStore: the API's (async repositories, the change feed);
 * - openPlaneStore: the data plane's, a synchronous PolicySource for the doors' engine (the
 *   sqlite store itself, or for PostgreSQL an in-memory copy following the change feed).
 */
import type { Logger } from 'pino';
import { ConfigError } from '../config.js';
import type { PolicySource } from '../policy/source.js';
import type { CredentialSource } from '../policy/credentials.js';
import { SecretBox } from './secret-box.js';
import { type ControlStore, isPostgresUrl } from './backend.js';
import { FeedFollower } from './feed-follower.js';
import { sqliteControlStore } from './sqlite/control.js';
import { type OpenOptions, openSqliteStore } from './sqlite/store.js';
import type { DenialEventBatchRow, DenialLimits } from './types.js';

export interface ControlOpenOptions extends OpenOptions {
  /** PostgreSQL pool size. */
  connections?: number;
}

/** The secrets key of the options (or none). */
function boxOf(opts: ControlOpenOptions): SecretBox | null {
  if (opts.box !== undefined) return opts.box;
  return opts.secrets ? new SecretBox(opts.secrets.keyFile, opts.secrets.create) : null;
}

export async function openControlStore(db: string, opts: ControlOpenOptions = {}): Promise<ControlStore> {
  if (!isPostgresUrl(db)) return sqliteControlStore(openSqliteStore(db, opts));
  // Loaded only for a PostgreSQL URL: the driver costs a sqlite user's every command nothing.
  const { PgOpenError, openPostgres } = await import('./pg/index.js');
  try {
    return await openPostgres(db, { changeLogKeep: opts.changeLogKeep, connections: opts.connections, box: boxOf(opts) });
  } catch (e) {
    if (e instanceof PgOpenError) throw new ConfigError('--db', e.message);
    throw e;
  }
}

/** What the data plane reads policies and devboxes from, and writes its denial record to. */
export interface PlaneStore {
  readonly source: PolicySource;
  /** What the agent-gateway and MCP-hub doors read (tokens, configs, secret values). */
  readonly credentials: CredentialSource;
  readonly control: ControlStore;
  /** Takes in what was committed up to now (after the API's write); resolves once the engine has it. */
  refresh(): Promise<void>;
  readonly denials: { writeDenialEvents(rows: readonly DenialEventBatchRow[], limits: DenialLimits): void | Promise<void> };
  close(): Promise<void>;
}

export async function openPlaneStore(db: string, opts: ControlOpenOptions & { log?: Logger; pollMs?: number } = {}): Promise<PlaneStore> {
  if (!isPostgresUrl(db)) {
    const store = openSqliteStore(db, opts);
    return {
      source: store,
      credentials: store.credentials,
      control: sqliteControlStore(store),
      refresh: async () => store.refresh(),
      denials: { writeDenialEvents: (rows, limits) => store.denialEvents.write(rows, limits) },
      close: async () => store.close(),
    };
  }
  const box = boxOf(opts);
  const control = await openControlStore(db, { ...opts, box });
  let follower: FeedFollower;
  try {
    follower = await FeedFollower.start(control.feed, { log: opts.log, pollMs: opts.pollMs, box });
  } catch (e) {
    await control.close();
    throw new ConfigError('--db', `cannot read ${control.location}: ${(e as Error).message}`);
  }
  return {
    source: follower,
    credentials: follower.credentials,
    control,
    refresh: () => follower.refresh(),
    denials: { writeDenialEvents: (rows, limits) => control.denialEvents.write(rows, limits) },
    close: async () => {
      follower.close();
      await control.close();
    },
  };
}
