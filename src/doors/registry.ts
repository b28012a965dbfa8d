/**
 * Every door the gateway runs, one line each. The wiring starts them from here (in this order,
 * each given only the parts it names), the start-up line and `Gateway.doors` use their names,
 * and the tests iterate them: test gateways open each on a free port, the layers rule checks
 * every door folder is reached from here, the every-door case table asks each door that decides
 * client-named destinations for its client, and test/architecture/door-registry.test.ts checks
 * settings and that each flag is documented. Adding a door is its folder `src/doors/<name>/` and one line below: its
 * listener's name, the `door` label(s) of its metrics and log lines, the setting that holds its
 * address, the parts of the gateway it uses, and its start function.
 */
import type { GatewayConfig, HostPort } from '../config.js';
import type { Door } from '../policy/decision.js';
import type { DoorContext, DoorNeed, RunningDoor } from './floor/context.js';
import { startDnsDoor } from './dns/door.js';
import { startHttpProxy, startTransparentHttp } from './http/door.js';
import { startSocksDoor } from './socks5/door.js';
import { startTransparentTls } from './tls/door.js';
import { startAgentGatewayDoor } from './agent-gateway/door.js';
import { startMcpHubDoor } from './mcp-hub/door.js';
import { AGENT_NEEDS } from './floor/agent-server.js';

/** Settings that hold a listener's address (HOST:PORT, or off). */
export type ListenerSetting = { [K in keyof GatewayConfig]: null extends GatewayConfig[K] ? (GatewayConfig[K] extends HostPort | null ? K : never) : never }[keyof GatewayConfig];

export interface DoorEntry<N extends DoorNeed = DoorNeed> {
  /** The listener's name: in start-up lines, the key of `Gateway.doors`, its `RunningDoor.name`. */
  readonly name: string;
  /** The `door` label of its metrics, log lines and recorded denials (the HTTP proxy's listener serves two). */
  readonly labels: readonly Door[];
  /** The setting holding its address; off (null): not started. */
  readonly setting: ListenerSetting;
  /** The parts of the gateway it is given (DoorContext); tsc checks they cover what `start` takes. */
  readonly needs: readonly N[];
  /** Decides destinations a client names (host or address, and port): the every-door case table runs it. */
  readonly clientDestinations: boolean;
  readonly start: (ctx: DoorContext<NoInfer<N>>, at: HostPort) => Promise<RunningDoor>;
}

/** One registry line (infers the parts the door needs from `needs`; keeps its name's spelling for ListenerName). */
function door<const N extends DoorNeed, const Name extends string>(entry: DoorEntry<N> & { readonly name: Name }): DoorEntry & { readonly name: Name } {
  return entry;
}

const PROXY = ['config', 'engine', 'gate', 'tracker', 'log', 'sourceLimit'] as const;

export const DOORS = [
  door({ name: 'http-proxy', labels: ['http', 'connect'], setting: 'httpProxy', needs: [...PROXY, 'upstreamPool'], clientDestinations: true, start: startHttpProxy }),
  door({ name: 'socks5', labels: ['socks5'], setting: 'socks', needs: PROXY, clientDestinations: true, start: startSocksDoor }),
  door({ name: 'dns', labels: ['dns'], setting: 'dns', needs: ['config', 'engine', 'gate', 'resolver', 'dnsTcp', 'log', 'learnedShared'], clientDestinations: true, start: startDnsDoor }),
  door({ name: 'transparent-tls', labels: ['transparent-tls'], setting: 'transparentTls', needs: PROXY, clientDestinations: true, start: startTransparentTls }),
  door({ name: 'transparent-http', labels: ['transparent-http'], setting: 'transparentHttp', needs: [...PROXY, 'upstreamPool'], clientDestinations: true, start: startTransparentHttp }),
  // The credential doors (docs/agent-gateway.md): their destination is a config's endpoint, not one the client names.
  door({ name: 'agent-gateway', labels: ['agent-gateway'], setting: 'agentGateway', needs: AGENT_NEEDS, clientDestinations: false, start: startAgentGatewayDoor }),
  door({ name: 'mcp-hub', labels: ['mcp-hub'], setting: 'mcpHub', needs: AGENT_NEEDS, clientDestinations: false, start: startMcpHubDoor }),
] as const satisfies readonly DoorEntry[];

/** The name of a listener of the registry (the key of `Gateway.doors`). */
export type ListenerName = (typeof DOORS)[number]['name'];
