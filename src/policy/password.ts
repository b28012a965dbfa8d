/**
 * Devbox proxy passwords: stored only as a sha256 hex digest (`Devbox.password_hash`),
 * compared in constant time. The store hashes a password when it hands one out; the
 * engine checks the credentials a door presents.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

export function hashPassword(password: string): string {
  return createHash('sha256').update(password).digest('hex');
}

const NO_HASH = '0'.repeat(64);

/** Whether `password` hashes to `hash` (null: no such devbox; compared all the same, so timing tells nothing). */
export function passwordMatches(hash: string | null, password: string): boolean {
  const got = Buffer.from(hashPassword(password), 'hex');
  const want = Buffer.from(hash ?? NO_HASH, 'hex');
  return hash !== null && want.length === got.length && timingSafeEqual(got, want);
}
