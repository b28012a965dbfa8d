/**
 * The control plane's store as the API sees it: one repository per resource, the change feed,
 * and health, every call a Promise so that a backend over the network (PostgreSQL) and the
 * embedded one (sqlite, which answers at once) are used the same way. Two implementations,
 * one file per repository each: `sqlite/` (synchronous repositories made async by
 * `sqlite/control.ts`; the sqlite store is also the data plane's PolicySource) and `pg/`
 * (PostgreSQL; the data plane follows its change feed into memory).
 */
import type { Devbox, NetworkPolicy } from '../policy/model.js';
import type { AgentGatewayConfig, McpConfig } from '../policy/credentials.js';
import type { AgentConfigRepository, AgentTokenRepository, MintedToken, SecretRepository } from './agents.js';
import type { Blueprint, BlueprintStatus, FailureReason } from './blueprints.js';
import type { ChangeFeed } from './change-feed.js';
import type { BlueprintInput, BlueprintQuery, ConfiguredToken, DenialEvent, DenialEventBatchRow, DenialEventQuery, DenialLimits, DevboxInput, DevboxPatch, DevboxQuery, Page, PolicyInput, PolicyPatch, PolicyQuery, Quotas, TokenInfo } from './types.js';

export interface TokenRepository {
  /**
   * Makes the configured tokens exactly the set given; with none configured and none stored,
   * creates a first-start token for account `default` and returns it.
   */
  ensure(configured: readonly ConfiguredToken[]): Promise<string | null>;
  accountFor(token: string): Promise<string | null>;
  list(): Promise<TokenInfo[]>;
  /** A new token for the account, returned once; only its hash is stored. */
  create(accountId: string): Promise<{ token: string; info: TokenInfo }>;
  /** Deletes the one token whose id, id prefix, display prefix or full text is ref. */
  revoke(ref: string): Promise<TokenInfo>;
}

export interface PolicyRepository {
  create(accountId: string, input: PolicyInput): Promise<NetworkPolicy>;
  get(accountId: string, id: string): Promise<NetworkPolicy | undefined>;
  getByName(accountId: string, name: string): Promise<NetworkPolicy | undefined>;
  update(accountId: string, id: string, patch: PolicyPatch): Promise<NetworkPolicy>;
  delete(accountId: string, id: string): Promise<NetworkPolicy>;
  list(accountId: string, query: PolicyQuery): Promise<Page<NetworkPolicy>>;
}

export interface DevboxRepository {
  /** Returns the devbox, its proxy password (stored only as a hash) and the agent tokens minted for its specs (their text only here). */
  create(accountId: string, input: DevboxInput): Promise<{ devbox: Devbox; password: string; agentTokens: MintedToken[] }>;
  get(accountId: string, id: string): Promise<Devbox | undefined>;
  update(accountId: string, id: string, patch: DevboxPatch): Promise<Devbox>;
  shutdown(accountId: string, id: string): Promise<Devbox>;
  list(accountId: string, query: DevboxQuery): Promise<Page<Devbox>>;
}

export interface BlueprintRepository {
  create(accountId: string, input: BlueprintInput): Promise<Blueprint>;
  get(accountId: string, id: string): Promise<Blueprint | undefined>;
  list(accountId: string, query: BlueprintQuery): Promise<Page<Blueprint>>;
  /** Moves a build along; leaving the active steps frees its addresses. */
  setStatus(accountId: string, id: string, status: BlueprintStatus, failureReason?: FailureReason | null): Promise<Blueprint>;
  delete(accountId: string, id: string): Promise<Blueprint>;
}

export interface DenialEventRepository {
  /** The denial record's batch write (see DenialRecorder). */
  write(rows: readonly DenialEventBatchRow[], limits: DenialLimits): Promise<void>;
  list(accountId: string, query: DenialEventQuery): Promise<Page<DenialEvent>>;
}

export type BackendKind = 'sqlite' | 'postgres';

export interface ControlStore {
  readonly kind: BackendKind;
  /** Where it is, for messages (a file path, or a URL without its password). */
  readonly location: string;
  readonly tokens: TokenRepository;
  readonly policies: PolicyRepository;
  readonly devboxes: DevboxRepository;
  readonly blueprints: BlueprintRepository;
  readonly denialEvents: DenialEventRepository;
  /** Agent gateway and MCP hub resources (issue 21; store/agents.ts). */
  readonly secrets: SecretRepository;
  readonly gatewayConfigs: AgentConfigRepository<AgentGatewayConfig>;
  readonly mcpConfigs: AgentConfigRepository<McpConfig>;
  readonly agentTokens: AgentTokenRepository;
  readonly feed: ChangeFeed;
  /** Limits what each account may store from now on (checked in each write's transaction). */
  setQuotas(q: Quotas | null): void;
  /** Called after each write this process committed (the API then waits for the doors). */
  onCommit(listener: () => void): () => void;
  /**
   * Null when the store takes writes now (probed at most once a second; a write that failed
   * on storage in the last 10 s counts), else why not.
   */
  probeWritable(): Promise<string | null>;
  close(): Promise<void>;
}

/** A `--db` value naming a PostgreSQL database rather than a sqlite file. */
export function isPostgresUrl(db: string): boolean {
  return /^postgres(ql)?:\/\//i.test(db);
}
