/**
 * Metrics of the credential doors (agent gateway, MCP hub), per devbox and config: requests
 * by status, bytes, latency, refusals by reason, MCP tool calls. Labels carry ids only
 * (devbox id, config id, token-free reasons and allowed tool names), never a secret or a token.
 */
import { Counter, Histogram } from 'prom-client';
import { registry } from '../../metrics.js';

export const agentRequests = new Counter({
  name: 'egress_agent_requests_total',
  help: 'Requests through the agent gateway and MCP hub, by door, devbox, config and HTTP status answered',
  labelNames: ['door', 'devbox', 'config', 'status'] as const,
  registers: [registry],
});

export const agentBytes = new Counter({
  name: 'egress_agent_bytes_total',
  help: 'Body bytes relayed by the agent gateway and MCP hub, by door, devbox, config and direction (out: devbox to upstream)',
  labelNames: ['door', 'devbox', 'config', 'direction'] as const,
  registers: [registry],
});

export const agentSeconds = new Histogram({
  name: 'egress_agent_request_duration_seconds',
  help: 'Time from a request reaching the agent gateway or MCP hub to the upstream response head, by door, devbox and config',
  labelNames: ['door', 'devbox', 'config'] as const,
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registers: [registry],
});

export const agentRefusals = new Counter({
  name: 'egress_agent_refusals_total',
  help: 'Requests and MCP messages the agent gateway and MCP hub refused, by door, devbox, config and reason',
  labelNames: ['door', 'devbox', 'config', 'reason'] as const,
  registers: [registry],
});

export const mcpToolCalls = new Counter({
  name: 'egress_mcp_tool_calls_total',
  help: 'MCP tools/call requests, by devbox, config, tool (the exposed name; "(refused)" for names not allowed) and decision (allow, deny)',
  labelNames: ['devbox', 'config', 'tool', 'decision'] as const,
  registers: [registry],
});
