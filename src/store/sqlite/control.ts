/**
 * The sqlite store as the API's ControlStore: each repository is the synchronous one of
 * sqlite/<resource>.ts, its calls run at once and settle a promise (a thrown StoreError or
 * storage fault rejects).
 */
import type { AgentGatewayConfig, McpConfig } from '../../policy/credentials.js';
import type { AgentConfigRepository, AgentTokenRepository, SecretRepository } from '../agents.js';
import type { BlueprintRepository, ControlStore, DenialEventRepository, DevboxRepository, PolicyRepository, TokenRepository } from '../backend.js';
import type { ChangeFeed } from '../change-feed.js';
import type { Sync } from './context.js';
import type { SqliteStore } from './store.js';

/** Runs fn now; its result or its throw as a settled promise. */
function now<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (e) {
    return Promise.reject(e);
  }
}

/** The repository `sync` (a class instance: its methods are on its prototype) with every method answering a promise. */
export function promised<R extends object>(sync: Sync<R>): R {
  const out: Record<string, unknown> = {};
  const proto = Object.getPrototypeOf(sync) as Record<string, unknown>;
  for (const name of Object.getOwnPropertyNames(proto)) {
    const m = (sync as Record<string, unknown>)[name];
    if (name === 'constructor' || typeof m !== 'function') continue;
    out[name] = (...args: unknown[]) => now(() => (m as (...a: unknown[]) => unknown).apply(sync, args));
  }
  return out as R;
}

export function sqliteControlStore(store: SqliteStore): ControlStore {
  return {
    kind: 'sqlite',
    location: store.path,
    tokens: promised<TokenRepository>(store.tokens),
    policies: promised<PolicyRepository>(store.policies),
    devboxes: promised<DevboxRepository>(store.devboxes),
    blueprints: promised<BlueprintRepository>(store.blueprints),
    denialEvents: promised<DenialEventRepository>(store.denialEvents),
    secrets: promised<SecretRepository>(store.agents.secrets),
    gatewayConfigs: promised<AgentConfigRepository<AgentGatewayConfig>>(store.agents.gatewayConfigs),
    mcpConfigs: promised<AgentConfigRepository<McpConfig>>(store.agents.mcpConfigs),
    agentTokens: promised<AgentTokenRepository>(store.agents.tokens),
    feed: promised<ChangeFeed>(store.feed),
    setQuotas: (q) => store.setQuotas(q),
    onCommit: (listener) => store.onChange(() => listener()),
    probeWritable: () => now(() => store.probeWritable()),
    close: () => now(() => store.close()),
  };
}
