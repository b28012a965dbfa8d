/**
 * POST /v1/devboxes/{id}/create_gateway_token and /create_mcp_token (the SDK's
 * createGatewayToken / createMcpToken): a token bound to a running devbox of the account, a
 * config and a secret. The text is in this answer only; the store keeps its SHA-256.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { GatewayConfig } from '../../config.js';
import type { AgentKind } from '../../store/agents.js';
import type { ControlStore } from '../../store/backend.js';
import { badRequest } from '../errors.js';
import { errorResponses, idParams } from '../schemas.js';
import { gatewayTokenBody, gatewayTokenView as gatewaySchema, mcpTokenBody, mcpTokenView as mcpSchema } from '../agent-schemas.js';
import { agentUrls, gatewayTokenView, mcpTokenView } from '../agent-views.js';

/** The URL a token of kind is used at, or a 400 saying that door is off. */
export function agentUrl(config: GatewayConfig, kind: AgentKind): string {
  const urls = agentUrls(config);
  const url = kind === 'gateway' ? urls.gateway : urls.mcp;
  if (url === null) throw badRequest(kind === 'gateway' ? 'the agent gateway is off (--agent-gateway off) and --agent-gateway-url is not set: no URL to mint a gateway token for' : 'the MCP hub is off (--mcp-hub off) and --mcp-hub-url is not set: no URL to mint an MCP token for');
  return url;
}

export const agentTokenRoutes =
  (store: ControlStore, config: GatewayConfig): FastifyPluginAsync =>
  async (app) => {
    const tags = ['devboxes'];
    const security = [{ bearerAuth: [] }];

    app.post<{ Params: { id: string }; Body: { gateway: string; secret: string } }>(
      '/v1/devboxes/:id/create_gateway_token',
      {
        schema: {
          tags,
          security,
          operationId: 'createGatewayToken',
          summary: 'Mint an agent gateway token for a running devbox: requests from its addresses carrying it get the secret applied upstream. Shown once.',
          params: idParams,
          body: gatewayTokenBody,
          response: { 200: gatewaySchema, ...errorResponses(400, 401, 403, 404, 415, 503) },
        },
      },
      async (req) => {
        const url = agentUrl(config, 'gateway');
        const t = await store.agentTokens.mint(req.accountId, { kind: 'gateway', devboxId: req.params.id, config: req.body.gateway, secret: req.body.secret });
        req.log.info({ event: 'agent_token_minted', kind: 'gateway', account: req.accountId, devbox: t.devboxId, config: t.config.id, secret: t.secretId }, 'gateway token minted');
        return gatewayTokenView(t, url);
      },
    );

    app.post<{ Params: { id: string }; Body: { mcp_config: string; secret: string } }>(
      '/v1/devboxes/:id/create_mcp_token',
      {
        schema: {
          tags,
          security,
          operationId: 'createMcpToken',
          summary: "Mint an MCP hub token for a running devbox, limited to the config's allowed_tools. Shown once.",
          params: idParams,
          body: mcpTokenBody,
          response: { 200: mcpSchema, ...errorResponses(400, 401, 403, 404, 415, 503) },
        },
      },
      async (req) => {
        const url = agentUrl(config, 'mcp');
        const t = await store.agentTokens.mint(req.accountId, { kind: 'mcp', devboxId: req.params.id, config: req.body.mcp_config, secret: req.body.secret });
        req.log.info({ event: 'agent_token_minted', kind: 'mcp', account: req.accountId, devbox: t.devboxId, config: t.config.id, secret: t.secretId }, 'MCP token minted');
        return mcpTokenView(t, url);
      },
    );
  };
