/**
 * Before `serve` starts anything slow (the store, the API process, workers), it tries every
 * configured listener's address once (TCP, and UDP for the DNS door) and closes it again, so a
 * port already taken is reported at once, as its own error naming the port, the setting and
 * the process holding it (doors/floor/port-holder.ts). Port 0 needs no check.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { type GatewayConfig, type HostPort, OPTIONS } from '../config.js';
import { listenError, listenOn } from '../doors/floor/listen.js';

/**
 * Listener settings in config.ts that no door opens yet (their doors land with the door
 * registry of issue 22): not checked, so a busy 8081/8082 does not stop a gateway that would
 * not listen there. Remove a name here when its door starts.
 */
const NOT_OPENED_YET: ReadonlySet<string> = new Set(['agent-gateway', 'mcp-hub']);

/** The listener settings: every address-valued setting the gateway listens on (`hostport` kinds). */
export function listenerSettings(config: GatewayConfig): Array<{ setting: string; at: HostPort; udp: boolean }> {
  const out: Array<{ setting: string; at: HostPort; udp: boolean }> = [];
  for (const o of OPTIONS) {
    if ((o.kind.t !== 'hostport' && o.kind.t !== 'hostportOrOff') || NOT_OPENED_YET.has(o.flag)) continue;
    const at = config[o.key] as HostPort | null;
    if (at === null || at.port === 0) continue;
    out.push({ setting: `--${o.flag}`, at, udp: o.flag === 'dns' });
  }
  return out;
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
