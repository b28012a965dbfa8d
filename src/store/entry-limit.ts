/**
 * What one stored policy may weigh, serialised. In fleet mode every policy travels as one NATS
 * message (src/fleet/keys.ts), and NATS refuses a message over its max_payload (1 MiB by
 * default): a policy the API accepted but the fan-out cannot carry would be acknowledged and
 * never enforced. The bound leaves room for the entry's envelope (seq, epoch, ids, signature),
 * and both backends apply it, so a policy written standalone can always move to a fleet.
 */
import type { NetworkPolicy } from '../policy/model.js';
import { StoreError } from './types.js';

export const POLICY_MAX_BYTES = 1_000_000;

/** Throws 'too_large' (the API's 413) when the policy as stored would not fit one fleet entry. */
export function checkPolicyFits(p: NetworkPolicy): void {
  const bytes = Buffer.byteLength(JSON.stringify(p));
  if (bytes > POLICY_MAX_BYTES) {
    throw new StoreError('too_large', `the network policy is ${bytes} bytes stored; the limit is ${POLICY_MAX_BYTES} bytes (one fleet entry must fit NATS's 1 MiB max payload): split its entries across policies`, { bytes, limit: POLICY_MAX_BYTES });
  }
}
