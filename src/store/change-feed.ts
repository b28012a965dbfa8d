/**
 * The outbox a control plane publishes from (fleet mode, issue #13). Every store write commits
 * one change record per resource it touched in the same transaction; `seq` increases in commit
 * order (a PostgreSQL backend serialises its writers on an advisory lock so that a reader never
 * sees seq N+1 committed before N). Both backends implement this; the NATS publisher reads only it.
 */
import type { Devbox, NetworkPolicy } from '../policy/model.js';

export type ChangeRecord = { seq: number; kind: 'policy'; id: string; accountId: string; value: NetworkPolicy | null } | { seq: number; kind: 'devbox'; id: string; accountId: string; hostId: string | null; value: Devbox | null };

export interface ChangeFeed {
  /**
   * Committed changes with seq > after, oldest first, at most `limit`. `value` is the resource as
   * that change left it (null: deleted). Records older than the retained window are gone: when
   * the first record returned is not after+1 (or none is returned while `lastSeq()` > after),
   * the reader has fallen out of the window and must take a `snapshot()`.
   */
  changesSince(after: number, limit: number): Promise<ChangeRecord[]>;
  /** The seq of the newest committed change (0 when there is none). */
  lastSeq(): Promise<number>;
  /** Every policy and every devbox that is not shut down, consistent as of `seq`. */
  snapshot(): Promise<{ seq: number; policies: NetworkPolicy[]; devboxes: Devbox[] }>;
}
