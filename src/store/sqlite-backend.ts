/**
 * The sqlite Store seen through the async ControlStore interface: every call runs the
 * synchronous store at once and resolves (a thrown StoreError or storage fault rejects).
 */
import type { ControlStore } from './backend.js';
import type { ChangeFeed } from './change-feed.js';
import type { Store } from './index.js';
import type { McpConfig } from '../policy/credentials.js';

/** Runs fn now; its result or its throw as a settled promise. */
function now<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (e) {
    return Promise.reject(e);
  }
}

export function sqliteBackend(store: Store): ControlStore {
  const feed: ChangeFeed = {
    changesSince: (after, limit) => now(() => store.changesSince(after, limit)),
    lastSeq: () => now(() => store.lastSeq()),
    snapshot: () => now(() => store.snapshot()),
  };
  return {
    kind: 'sqlite',
    location: store.path,
    tokens: {
      ensure: (c) => now(() => store.ensureTokens(c)),
      accountFor: (t) => now(() => store.accountForToken(t)),
      list: () => now(() => store.listTokens()),
      create: (a) => now(() => store.createToken(a)),
      revoke: (r) => now(() => store.revokeToken(r)),
    },
    policies: {
      create: (a, i) => now(() => store.createPolicy(a, i)),
      get: (a, id) => now(() => store.getPolicyFor(a, id)),
      getByName: (a, n) => now(() => store.getPolicyByName(a, n)),
      update: (a, id, p) => now(() => store.updatePolicy(a, id, p)),
      delete: (a, id) => now(() => store.deletePolicy(a, id)),
      list: (a, q) => now(() => store.listPolicies(a, q)),
    },
    devboxes: {
      create: (a, i) => now(() => store.createDevbox(a, i)),
      get: (a, id) => now(() => store.getDevboxFor(a, id)),
      update: (a, id, p) => now(() => store.updateDevbox(a, id, p)),
      shutdown: (a, id) => now(() => store.shutdownDevbox(a, id)),
      list: (a, q) => now(() => store.listDevboxes(a, q)),
    },
    blueprints: {
      create: (a, i) => now(() => store.createBlueprint(a, i)),
      get: (a, id) => now(() => store.getBlueprintFor(a, id)),
      list: (a, q) => now(() => store.listBlueprints(a, q)),
      setStatus: (a, id, s, r) => now(() => store.setBlueprintStatus(a, id, s, r)),
      delete: (a, id) => now(() => store.deleteBlueprint(a, id)),
    },
    denialEvents: {
      write: (rows, limits) => now(() => store.writeDenialEvents(rows, limits)),
      list: (a, q) => now(() => store.listDenialEvents(a, q)),
    },
    secrets: {
      create: (a, n, v) => now(() => store.agents.secrets.create(a, n, v)),
      get: (a, n) => now(() => store.agents.secrets.get(a, n)),
      update: (a, n, v) => now(() => store.agents.secrets.update(a, n, v)),
      delete: (a, n) => now(() => store.agents.secrets.delete(a, n)),
      list: (a, q) => now(() => store.agents.secrets.list(a, q)),
    },
    gatewayConfigs: {
      create: (a, i) => now(() => store.agents.configs.create('gateway', a, i)),
      get: (a, id) => now(() => store.agents.configs.get('gateway', a, id)),
      update: (a, id, p) => now(() => store.agents.configs.update('gateway', a, id, p)),
      delete: (a, id) => now(() => store.agents.configs.delete('gateway', a, id)),
      list: (a, q) => now(() => store.agents.configs.list('gateway', a, q)),
    },
    mcpConfigs: {
      create: (a, i) => now(() => store.agents.configs.create('mcp', a, i) as McpConfig),
      get: (a, id) => now(() => store.agents.configs.get('mcp', a, id) as McpConfig | undefined),
      update: (a, id, p) => now(() => store.agents.configs.update('mcp', a, id, p) as McpConfig),
      delete: (a, id) => now(() => store.agents.configs.delete('mcp', a, id) as McpConfig),
      list: (a, q) => now(() => store.agents.configs.list('mcp', a, q) as { items: McpConfig[]; hasMore: boolean; totalCount: number | null }),
    },
    agentTokens: {
      mint: (a, i) => now(() => store.agents.tokens.mint(a, i)),
    },
    feed,
    setQuotas: (q) => store.setQuotas(q),
    onCommit: (listener) => store.onChange(() => listener()),
    probeWritable: () => now(() => store.probeWritable()),
    close: () => now(() => store.close()),
  };
}
