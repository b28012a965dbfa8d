/**
 * Fleet mode's wiring: with --nats, the control plane's publisher over its outbox; with
 * --follow, the sidecar's follower over its local snapshot. Neither: nothing (one host, sqlite).
 */
import type { Logger } from 'pino';
import type { GatewayConfig } from '../config.js';
import type { Store } from '../store/index.js';
import { Follower, type FollowerStatus } from './follower.js';
import { LocalSnapshot } from './local-snapshot.js';
import { Publisher } from './publisher.js';
import { SqliteChangeFeed } from './sqlite-feed.js';

export type { FollowerStatus };

export interface Fleet {
  /** Starts following or publishing (after the doors listen: a sidecar enforces its snapshot from the start). */
  start(): void;
  /** The sidecar's snapshot (null on a control plane). */
  follower(): FollowerStatus | null;
  /** Why /readyz should fail, or null: a sidecar that never synced has nothing to enforce. */
  unready(): string | null;
  close(): Promise<void>;
}

export function startFleet(config: GatewayConfig, store: Store, log: Logger): Fleet | null {
  if (config.follow !== null) {
    const snapshot = new LocalSnapshot(store.path);
    const follower = new Follower(config, snapshot, () => store.refresh(), log.child({ fleet: 'follower' }));
    return {
      start: () => follower.start(),
      follower: () => follower.status(),
      unready: () => (follower.hasSnapshot() ? null : `no policy snapshot yet from ${config.follow} (host ${config.hostId})`),
      async close() {
        await follower.close();
        snapshot.close();
      },
    };
  }
  if (config.nats !== null) {
    const feed = new SqliteChangeFeed(store.path);
    const publisher = new Publisher(config, feed, log.child({ fleet: 'publisher' }));
    const stop = store.onChange(() => publisher.nudge());
    return {
      start: () => publisher.start(),
      follower: () => null,
      unready: () => null,
      async close() {
        stop();
        await publisher.close();
        feed.close();
      },
    };
  }
  return null;
}
