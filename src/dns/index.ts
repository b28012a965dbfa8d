/** The DNS door and the gateway's own resolver. (Placeholder until the DNS door lands.) */
import type { Logger } from 'pino';
import type { GatewayConfig, HostPort } from '../config.js';
import type { DoorContext, RunningDoor } from '../door.js';
import { type Resolver, SimpleUpstreamResolver } from './resolver.js';

export function createResolver(config: GatewayConfig, _log: Logger): Resolver {
  return new SimpleUpstreamResolver(config.upstreamDns);
}

export async function startDnsDoor(ctx: DoorContext, at: HostPort): Promise<RunningDoor> {
  ctx.log.warn('DNS door not implemented yet');
  return { name: 'dns', address: at, close: async () => {} };
}
