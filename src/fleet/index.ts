/**
 * Fleet mode's wiring: with --nats, the control plane's publisher over its outbox; with
 * --follow, the sidecar's follower over its local snapshot. Neither: nothing (one host, sqlite).
 */
import type { Logger } from 'pino';
import type { GatewayConfig } from '../config.js';
import { ConfigError } from '../config.js';
import { isPostgresUrl } from '../store/backend.js';
import type { PlaneStore } from '../store/open.js';
import { Follower, type FollowerStatus } from './fleet-follower.js';
import { LocalSnapshot } from './local-snapshot.js';
import { Publisher } from './publisher.js';
import { Verifier, loadSigner, loadVerifier } from './signing.js';

export type { FollowerStatus };

export interface Fleet {
  /** Starts following or publishing (after the doors listen: a sidecar enforces its snapshot from the start). */
  start(): void;
  /** The sidecar's snapshot (null on a control plane). */
  follower(): FollowerStatus | null;
  /**
   * Why /readyz should fail, or null: a sidecar that never synced has nothing to enforce, one
   * past --max-staleness is behind the control plane; a replica whose publisher cannot publish.
   */
  unready(): string | null;
  /** A sidecar past --max-staleness with --stale fail-closed: the doors refuse new connections. */
  refusing(): boolean;
  close(): Promise<void>;
}

/** `applied`: told after a follower's update is in the local store (the primary passes it on to its workers). */
export function startFleet(config: GatewayConfig, store: PlaneStore, log: Logger, applied?: () => void): Fleet | null {
  if (config.follow !== null) {
    // A sidecar keeps its snapshot in a local sqlite file: it needs no database credentials.
    if (isPostgresUrl(config.db)) throw new ConfigError('--db', 'a sidecar (--follow) keeps its snapshot in a local sqlite file, not in PostgreSQL');
    const verifier = config.fleetVerifyKeys !== null ? loadVerifier(config.fleetVerifyKeys) : null;
    if (verifier) log.info({ event: 'fleet_verifying', kids: verifier.kids() }, `applying only fleet entries signed by ${verifier.kids().join(', ')}`);
    else log.warn({ event: 'fleet_unverified' }, 'fleet entries are not verified (no --fleet-verify-keys): anyone who can write the bucket can change what this sidecar enforces');
    const snapshot = new LocalSnapshot(config.db);
    const follower = new Follower(
      config,
      snapshot,
      () => {
        void store.refresh();
        applied?.();
      },
      log.child({ fleet: 'follower' }),
      verifier,
    );
    return {
      start: () => follower.start(),
      follower: () => follower.status(),
      unready: () => {
        if (!follower.hasSnapshot()) return `no policy snapshot yet from NATS (host ${config.hostId})`;
        const s = follower.status();
        return s.stale ? `the policy snapshot is ${Math.round(s.age_seconds)} s behind the control plane (more than --max-staleness ${s.max_staleness_seconds} s)` : null;
      },
      refusing: () => config.stale === 'fail-closed' && follower.stale(),
      async close() {
        await follower.close();
        snapshot.close();
      },
    };
  }
  if (config.nats !== null) {
    // The outbox of either backend: every committed write, in commit order.
    const signer = config.fleetSigningKey !== null ? loadSigner(config.fleetSigningKey) : null;
    const also = config.fleetVerifyKeys !== null ? loadVerifier(config.fleetVerifyKeys).keyObjects() : [];
    const trust = signer ? new Verifier([signer.publicKey, ...also]) : null;
    if (signer) log.info({ event: 'fleet_signing', kid: signer.kid, trusted: trust!.kids() }, `signing fleet entries with key ${signer.kid}`);
    else log.warn({ event: 'fleet_unsigned' }, 'fleet entries are not signed (no --fleet-signing-key): sidecars cannot tell a forged entry from a real one');
    const publisher = new Publisher(config, store.control.feed, log.child({ fleet: 'publisher' }), signer, trust);
    const stop = store.source.onChange(() => publisher.nudge());
    return {
      start: () => publisher.start(),
      follower: () => null,
      unready: () => publisher.unready(),
      refusing: () => false,
      async close() {
        stop();
        await publisher.close();
      },
    };
  }
  return null;
}
