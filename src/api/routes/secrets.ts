/**
 * /v1/secrets: create, list, retrieve, update, delete by name (the SDK's client.secrets).
 * A value is sealed before it is stored and never returned, logged or echoed in an error.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { ControlStore } from '../../store/backend.js';
import { notFound } from '../errors.js';
import { DEFAULT_LIST_LIMIT, emptyBody, errorResponses } from '../schemas.js';
import { secretCreateBody, secretListQuery, secretListView, secretNameParams, secretUpdateBody, secretView as secretViewSchema } from '../agent-schemas.js';
import { checkEnvName } from '../agent-validate.js';
import { secretView } from '../agent-views.js';

interface ListQuery {
  limit?: number;
  starting_after?: string;
  include_total_count?: boolean;
}

export const secretRoutes =
  (store: ControlStore): FastifyPluginAsync =>
  async (app) => {
    const tags = ['secrets'];
    const security = [{ bearerAuth: [] }];

    app.post<{ Body: { name: string; value: string } }>(
      '/v1/secrets',
      {
        schema: {
          tags,
          security,
          operationId: 'createSecret',
          summary: 'Create a Secret (name unique in the account; the value is encrypted at rest and never returned).',
          body: secretCreateBody,
          response: { 200: secretViewSchema, ...errorResponses(400, 401, 403, 413, 415, 503) },
        },
      },
      async (req) => {
        const name = checkEnvName('name', req.body.name);
        const s = await store.secrets.create(req.accountId, name, req.body.value);
        req.log.info({ event: 'secret_created', account: req.accountId, secret: s.id, name: s.name }, 'secret created');
        return secretView(s);
      },
    );

    app.get<{ Querystring: ListQuery }>(
      '/v1/secrets',
      {
        schema: {
          tags,
          security,
          operationId: 'listSecrets',
          summary: 'List Secrets (never their values).',
          querystring: secretListQuery,
          response: { 200: secretListView, ...errorResponses(400, 401) },
        },
      },
      async (req) => {
        const q = req.query;
        const includeTotal = q.include_total_count ?? true;
        const page = await store.secrets.list(req.accountId, { limit: q.limit ?? DEFAULT_LIST_LIMIT, startingAfter: q.starting_after, includeTotalCount: includeTotal });
        return { secrets: page.items.map(secretView), has_more: page.hasMore, ...(includeTotal ? { total_count: page.totalCount } : {}) };
      },
    );

    app.get<{ Params: { name: string } }>(
      '/v1/secrets/:name',
      {
        schema: { tags, security, operationId: 'getSecret', summary: 'Get a Secret by name (never its value).', params: secretNameParams, response: { 200: secretViewSchema, ...errorResponses(401, 404) } },
      },
      async (req) => {
        const s = await store.secrets.get(req.accountId, req.params.name);
        if (!s) throw notFound(`secret ${JSON.stringify(req.params.name)} not found`);
        return secretView(s);
      },
    );

    app.post<{ Params: { name: string }; Body: { value: string } }>(
      '/v1/secrets/:name',
      {
        schema: {
          tags,
          security,
          operationId: 'updateSecret',
          summary: "Replace a Secret's value; tokens that use it apply the new value from their next request.",
          params: secretNameParams,
          body: secretUpdateBody,
          response: { 200: secretViewSchema, ...errorResponses(400, 401, 404, 413, 415, 503) },
        },
      },
      async (req) => {
        const s = await store.secrets.update(req.accountId, req.params.name, req.body.value);
        req.log.info({ event: 'secret_updated', account: req.accountId, secret: s.id, name: s.name }, 'secret value replaced');
        return secretView(s);
      },
    );

    app.post<{ Params: { name: string } }>(
      '/v1/secrets/:name/delete',
      {
        schema: {
          tags,
          security,
          operationId: 'deleteSecret',
          summary: 'Delete a Secret and the gateway and MCP tokens bound to it; refused while a config custom header uses it.',
          params: secretNameParams,
          body: emptyBody,
          response: { 200: secretViewSchema, ...errorResponses(400, 401, 404, 415, 503) },
        },
      },
      async (req) => {
        const s = await store.secrets.delete(req.accountId, req.params.name);
        req.log.info({ event: 'secret_deleted', account: req.accountId, secret: s.id, name: s.name }, 'secret deleted');
        return secretView(s);
      },
    );
  };
