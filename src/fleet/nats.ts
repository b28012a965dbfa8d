/**
 * One NATS connection for a control-plane publisher or a sidecar follower: user/password or a
 * creds file, reconnecting forever (waitOnFirstConnect: a gateway starts while NATS is down),
 * with the connection state kept for health and metrics.
 */
import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { ConfigError, type GatewayConfig } from '../config.js';
import { escapeToken } from './keys.js';

export interface FleetConnection {
  nc: NatsConnection;
  /** True between a (re)connect and the next disconnect. */
  connected(): boolean;
  /** Resolves at the next disconnect (at once when not connected). */
  disconnected(): Promise<void>;
  /** Resolves once connected (at once when connected). */
  ready(): Promise<void>;
  close(): Promise<void>;
}

/** The inbox prefix of a sidecar's connection: `_INBOX_` and its host id escaped as in bucket keys. */
export function inboxPrefixFor(hostId: string): string {
  return `_INBOX_${escapeToken(hostId)}`;
}

export async function openConnection(config: GatewayConfig, servers: string, role: string, log: Logger): Promise<FleetConnection> {
  let authenticator: ReturnType<typeof credsAuthenticator> | undefined;
  if (config.natsCreds !== null) {
    let creds: Uint8Array;
    try {
      creds = readFileSync(config.natsCreds);
    } catch (e) {
      throw new ConfigError('--nats-creds', `cannot read ${config.natsCreds}: ${(e as Error).message}`);
    }
    authenticator = credsAuthenticator(creds);
  }
  const nc = await connect({
    servers: servers.split(',').map((s) => s.trim()),
    name: `egress-gateway ${role}${config.hostId ? ` ${config.hostId}` : ''}`,
    ...(config.natsUser !== null ? { user: config.natsUser, pass: config.natsPassword ?? '' } : {}),
    ...(authenticator ? { authenticator } : {}),
    // A sidecar's replies (its watches' deliveries included) come to an inbox of its own host,
    // so its NATS user may subscribe to `_INBOX_<host>.>` only, never to everyone's `_INBOX.>`.
    ...(role === 'follower' && config.hostId !== null ? { inboxPrefix: inboxPrefixFor(config.hostId) } : {}),
    waitOnFirstConnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    reconnectJitter: 100,
    pingInterval: 5000,
    maxPingOut: 2,
  });
  let up = true;
  let waiters: Array<() => void> = [];
  let downWaiters: Array<() => void> = [];
  const wake = (list: Array<() => void>) => {
    for (const w of list) w();
  };
  log.info({ event: 'nats_connected', role, server: nc.getServer() }, `NATS connected (${nc.getServer()})`);
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') {
        if (up) log.warn({ event: 'nats_disconnected', role }, 'NATS connection lost; reconnecting');
        up = false;
        wake(downWaiters);
        downWaiters = [];
      } else if (s.type === 'reconnect') {
        up = true;
        log.info({ event: 'nats_reconnected', role, server: nc.getServer() }, `NATS reconnected (${nc.getServer()})`);
        wake(waiters);
        waiters = [];
      }
    }
  })();
  return {
    nc,
    connected: () => up && !nc.isClosed(),
    disconnected: () => (up ? new Promise<void>((r) => downWaiters.push(r)) : Promise.resolve()),
    ready: () => (up ? Promise.resolve() : new Promise<void>((r) => waiters.push(r))),
    async close() {
      up = false;
      wake(downWaiters);
      wake(waiters);
      await nc.close().catch(() => {});
    },
  };
}
