/** HTTP forward proxy with CONNECT. (Placeholder until the proxy door lands.) */
import type { HostPort } from '../config.js';
import type { DoorContext, RunningDoor } from '../door.js';

export async function startHttpProxy(ctx: DoorContext, at: HostPort): Promise<RunningDoor> {
  ctx.log.warn('HTTP proxy not implemented yet');
  return { name: 'http-proxy', address: at, close: async () => {} };
}
