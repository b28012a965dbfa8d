import type { HostPort } from '../../config.js';
import type { DoorContext, RunningDoor } from '../floor/context.js';
import { startAgentServer } from '../floor/agent-server.js';
export async function startMcpHubDoor(ctx: DoorContext, at: HostPort): Promise<RunningDoor> {
  return startAgentServer(ctx, at, { door: 'mcp-hub', setting: '--mcp-hub', onRequest: (_q, res) => res.writeHead(501).end() });
}
