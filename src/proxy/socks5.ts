/** SOCKS5 door. (Placeholder until it lands.) */
import type { HostPort } from '../config.js';
import type { DoorContext, RunningDoor } from '../door.js';

export async function startSocksDoor(ctx: DoorContext, at: HostPort): Promise<RunningDoor> {
  ctx.log.warn('SOCKS5 door not implemented yet');
  return { name: 'socks', address: at, close: async () => {} };
}
