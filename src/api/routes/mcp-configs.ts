/** /v1/mcp-configs: create, list, get, update, delete (the SDK's client.mcpConfigs); allowed_tools are picomatch globs. */
import type { FastifyPluginAsync } from 'fastify';
import type { ControlStore } from '../../store/backend.js';
import { registerConfigRoutes } from '../agent-config-routes.js';
import { configListQuery, mcpConfigCreateBody, mcpConfigListView, mcpConfigUpdateBody, mcpConfigView as viewSchema } from '../agent-schemas.js';
import { mcpConfigView } from '../agent-views.js';

export const mcpConfigRoutes =
  (store: ControlStore): FastifyPluginAsync =>
  async (app) => {
    registerConfigRoutes(app, {
      kind: 'mcp',
      path: 'mcp-configs',
      listKey: 'mcp_configs',
      op: 'McpConfig',
      repo: store.mcpConfigs,
      view: mcpConfigView,
      schemas: { view: viewSchema, listView: mcpConfigListView, createBody: mcpConfigCreateBody, updateBody: mcpConfigUpdateBody, listQuery: configListQuery },
    });
  };
