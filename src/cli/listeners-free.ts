/**
 * Before `serve` starts anything slow (the store, the API thread, workers), it tries every
 * configured listener's address once (TCP, and UDP for the DNS door) and closes it again, so a
 * port already taken is reported at once, as its own error naming the port, the setting and
 * the process holding it (doors/floor/port-holder.ts). Port 0 needs no check.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { type GatewayConfig, type HostPort, flagOf } from '../config.js';
import { DOORS } from '../doors/registry.js';
import { listenError, listenOn } from '../doors/floor/listen.js';

/** The listener settings: the admin API and every door of the registry that is on (UDP too for DNS). */
export function listenerSettings(config: GatewayConfig): Array<{ setting: string; at: HostPort; udp: boolean }> {
  const listeners: Array<{ setting: string; at: HostPort | null; udp: boolean }> = [{ setting: '--api', at: config.api, udp: false }, ...DOORS.map((d) => ({ setting: `--${flagOf(d.setting)}`, at: config[d.setting], udp: d.labels.includes('dns') }))];
  return listeners.filter((l): l is { setting: string; at: HostPort; udp: boolean } => l.at !== null && l.at.port !== 0);
}

async function tryTcp(at: HostPort): Promise<void> {
  const server = net.createServer();
  try {
    await listenOn(server, at.port, at.host);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
}

async function tryUdp(at: HostPort): Promise<void> {
  const socket = dgram.createSocket(net.isIPv6(at.host) ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(at.port, at.host, () => resolve());
    });
  } finally {
    socket.close();
  }
}

/** Throws the first listener's start-up error (PortInUseError for a port in use). */
export async function checkListenersFree(config: GatewayConfig): Promise<void> {
  for (const { setting, at, udp } of listenerSettings(config)) {
    try {
      await tryTcp(at);
      if (udp) await tryUdp(at);
    } catch (e) {
      throw listenError(setting, at, e);
    }
  }
}
