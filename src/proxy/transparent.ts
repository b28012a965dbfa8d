/** Transparent TLS (SNI) and HTTP (Host) doors. (Placeholder until they land.) */
import type { HostPort } from '../config.js';
import type { DoorContext, RunningDoor } from '../door.js';

export async function startTransparentTls(ctx: DoorContext, at: HostPort): Promise<RunningDoor> {
  ctx.log.warn('transparent TLS not implemented yet');
  return { name: 'transparent-tls', address: at, close: async () => {} };
}

export async function startTransparentHttp(ctx: DoorContext, at: HostPort): Promise<RunningDoor> {
  ctx.log.warn('transparent HTTP not implemented yet');
  return { name: 'transparent-http', address: at, close: async () => {} };
}
