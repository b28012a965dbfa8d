/** /v1/gateway-configs: create, list (with the system configs anthropic and openai), get, update, delete (the SDK's client.gatewayConfigs). */
import type { FastifyPluginAsync } from 'fastify';
import type { ControlStore } from '../../store/backend.js';
import { registerConfigRoutes } from '../agent-config-routes.js';
import { configListQuery, gatewayConfigCreateBody, gatewayConfigListView, gatewayConfigUpdateBody, gatewayConfigView as viewSchema } from '../agent-schemas.js';
import { gatewayConfigView } from '../agent-views.js';

export const gatewayConfigRoutes =
  (store: ControlStore): FastifyPluginAsync =>
  async (app) => {
    registerConfigRoutes(app, {
      kind: 'gateway',
      path: 'gateway-configs',
      listKey: 'gateway_configs',
      op: 'GatewayConfig',
      repo: store.gatewayConfigs,
      view: gatewayConfigView,
      schemas: { view: viewSchema, listView: gatewayConfigListView, createBody: gatewayConfigCreateBody, updateBody: gatewayConfigUpdateBody, listQuery: configListQuery },
    });
  };
