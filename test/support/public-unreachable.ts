/**
 * Tests send traffic only to addresses on this machine. Where a test must let the gateway
 * dial a public address for real (an allowed public IP literal in the case table), the kernel
 * is told to drop that range first: an unreachable route makes connect() fail at once (EHOSTUNREACH), so
 * the dial is real and no packet leaves the host. Needs root (the netns tests do too);
 * without it the test fails with one line saying so rather than reaching the Internet.
 */
import { execFileSync } from 'node:child_process';

/** A metric no one else uses, so the routes removed are exactly the ones added here. */
const METRIC = '4242';

function route(op: 'add' | 'del', cidr: string): void {
  execFileSync('ip', ['route', op, 'unreachable', cidr, 'metric', METRIC], { stdio: 'pipe' });
}

/** Makes `cidrs` unreachable from this host until the returned function is called. */
export function unreachablePublic(cidrs: readonly string[]): () => void {
  for (const c of cidrs) {
    try {
      route('del', c);
    } catch {
      /* not left over from an earlier run */
    }
    try {
      route('add', c);
    } catch (e) {
      throw new Error(`cannot add an unreachable route for ${c} (needs root and iproute2), so the allowed public-address rows would reach the Internet: ${(e as Error).message}`);
    }
  }
  return () => {
    for (const c of cidrs) {
      try {
        route('del', c);
      } catch {
        /* already gone */
      }
    }
  };
}
