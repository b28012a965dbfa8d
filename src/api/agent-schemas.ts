/**
 * JSON schemas of the agent resources (issue 21), shaped as the official SDK's SecretView,
 * GatewayConfigView, McpConfigView, GatewayTokenView and McpTokenView: request validation
 * (unknown fields refused) and /openapi.json. Rules the schema cannot say are in agent-validate.ts.
 */
import { MAX_DESCRIPTION_LENGTH, MAX_NAME_LENGTH, listView, nullable, pageQuery } from './schemas.js';

const ref = { type: 'string', minLength: 1, maxLength: MAX_NAME_LENGTH } as const;

// ── secrets ────────────────────────────────────────────────────────────────

export const MAX_SECRET_BYTES = 64 * 1024;

export const secretView = {
  type: 'object',
  additionalProperties: false,
  description: 'A Secret: its value is never returned.',
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    create_time_ms: { type: 'integer' },
    update_time_ms: { type: 'integer' },
  },
  required: ['id', 'name', 'create_time_ms', 'update_time_ms'],
} as const;

export const secretCreateBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 128, description: 'An environment variable name: letters, digits and _, not starting with a digit.' },
    value: { type: 'string', minLength: 1, maxLength: MAX_SECRET_BYTES, description: 'Encrypted at rest; never returned.' },
  },
  required: ['name', 'value'],
} as const;

export const secretUpdateBody = {
  type: 'object',
  additionalProperties: false,
  properties: { value: secretCreateBody.properties.value },
  required: ['value'],
} as const;

export const secretNameParams = {
  type: 'object',
  properties: { name: { type: 'string', description: 'The secret name.' } },
  required: ['name'],
} as const;

export const secretListQuery = { type: 'object', additionalProperties: false, properties: pageQuery } as const;
export const secretListView = listView('secrets', secretView);

// ── gateway and MCP configs ────────────────────────────────────────────────

const authMechanismBody = {
  type: 'object',
  additionalProperties: false,
  description: "How the credential is applied upstream: 'header' (with key, e.g. x-api-key), 'bearer' or 'basic' (the secret holds user:pass).",
  properties: {
    type: { type: 'string', enum: ['header', 'bearer', 'basic'] },
    key: nullable({ type: 'string', minLength: 1, maxLength: 256 }),
  },
  required: ['type'],
} as const;

const authMechanismView = {
  type: 'object',
  additionalProperties: false,
  properties: { type: { type: 'string' }, key: nullable({ type: 'string' }) },
  required: ['type'],
} as const;

const customHeadersBody = nullable({
  type: 'array',
  maxItems: 8,
  description: 'At most 8 extra headers, each with exactly one of value (literal, returned by reads) and secret (name or sec_ id).',
  items: {
    type: 'object',
    additionalProperties: false,
    properties: {
      name: { type: 'string', minLength: 1, maxLength: 256 },
      value: nullable({ type: 'string', maxLength: 8192 }),
      secret: nullable(ref),
    },
    required: ['name'],
  },
});

const customHeadersView = {
  type: 'array',
  items: {
    type: 'object',
    additionalProperties: false,
    properties: { name: { type: 'string' }, value: { type: 'string' }, secret: { type: 'string', description: 'The sec_ id.' } },
    required: ['name'],
  },
} as const;

const configViewProps = {
  id: { type: 'string' },
  name: { type: 'string' },
  endpoint: { type: 'string' },
  auth_mechanism: authMechanismView,
  custom_headers: customHeadersView,
  description: nullable({ type: 'string' }),
  account_id: nullable({ type: 'string', description: 'null for a system config.' }),
  create_time_ms: { type: 'integer' },
} as const;

export const gatewayConfigView = {
  type: 'object',
  additionalProperties: false,
  properties: configViewProps,
  required: ['id', 'name', 'endpoint', 'auth_mechanism', 'create_time_ms'],
} as const;

const allowedTools = { type: 'array', minItems: 1, maxItems: 256, items: { type: 'string', minLength: 1, maxLength: 256 }, description: 'Tool globs (picomatch), e.g. search_* or *.' } as const;

export const mcpConfigView = {
  type: 'object',
  additionalProperties: false,
  properties: { ...configViewProps, allowed_tools: { type: 'array', items: { type: 'string' } } },
  required: ['id', 'name', 'endpoint', 'auth_mechanism', 'allowed_tools', 'create_time_ms'],
} as const;

const endpoint = { type: 'string', minLength: 1, maxLength: 2048 } as const;
const description = nullable({ type: 'string', maxLength: MAX_DESCRIPTION_LENGTH });

export const gatewayConfigCreateBody = {
  type: 'object',
  additionalProperties: false,
  properties: { name: ref, endpoint, auth_mechanism: authMechanismBody, custom_headers: customHeadersBody, description },
  required: ['name', 'endpoint', 'auth_mechanism'],
} as const;

export const gatewayConfigUpdateBody = {
  type: 'object',
  additionalProperties: false,
  description: 'Omitted or null fields keep their values; custom_headers replaces the list.',
  properties: { name: nullable(ref), endpoint: nullable(endpoint), auth_mechanism: nullable(authMechanismBody), custom_headers: customHeadersBody, description },
} as const;

export const mcpConfigCreateBody = {
  type: 'object',
  additionalProperties: false,
  properties: { ...gatewayConfigCreateBody.properties, auth_mechanism: nullable(authMechanismBody), allowed_tools: allowedTools },
  required: ['name', 'endpoint', 'allowed_tools'],
} as const;

export const mcpConfigUpdateBody = {
  type: 'object',
  additionalProperties: false,
  description: 'Omitted or null fields keep their values; custom_headers and allowed_tools replace their lists.',
  properties: { ...gatewayConfigUpdateBody.properties, allowed_tools: nullable(allowedTools) },
} as const;

export const configListQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    name: { type: 'string', description: 'Case-insensitive substring of the name.' },
    id: { type: 'string', description: 'Filter by id.' },
    search: { type: 'string', description: 'Substring of the id or the name.' },
    ...pageQuery,
  },
} as const;

export const gatewayConfigListView = listView('gateway_configs', gatewayConfigView);
export const mcpConfigListView = listView('mcp_configs', mcpConfigView);

// ── tokens ─────────────────────────────────────────────────────────────────

export const gatewayTokenBody = {
  type: 'object',
  additionalProperties: false,
  properties: { gateway: { ...ref, description: 'Gateway config id (gwc_…) or name.' }, secret: { ...ref, description: 'Secret id (sec_…) or name.' } },
  required: ['gateway', 'secret'],
} as const;

export const mcpTokenBody = {
  type: 'object',
  additionalProperties: false,
  properties: { mcp_config: { ...ref, description: 'MCP config id (mcp_…) or name.' }, secret: { ...ref, description: 'Secret id (sec_…) or name.' } },
  required: ['mcp_config', 'secret'],
} as const;

export const gatewayTokenView = {
  type: 'object',
  additionalProperties: false,
  description: 'Shown once: only its SHA-256 is stored.',
  properties: { token: { type: 'string' }, url: { type: 'string' }, devbox_id: { type: 'string' }, endpoint: { type: 'string' }, gateway_config_id: { type: 'string' }, auth_mechanism: authMechanismView },
  required: ['token', 'url', 'devbox_id', 'endpoint', 'gateway_config_id', 'auth_mechanism'],
} as const;

export const mcpTokenView = {
  type: 'object',
  additionalProperties: false,
  description: 'Shown once: only its SHA-256 is stored.',
  properties: { token: { type: 'string' }, url: { type: 'string' }, devbox_id: { type: 'string' }, endpoint: { type: 'string' }, mcp_config_id: { type: 'string' }, allowed_tools: { type: 'array', items: { type: 'string' } } },
  required: ['token', 'url', 'devbox_id', 'endpoint', 'mcp_config_id', 'allowed_tools'],
} as const;

// ── devbox create: gateways and mcp ────────────────────────────────────────

const specMap = (configField: 'gateway' | 'mcp_config', what: string) =>
  nullable({
    type: 'object',
    maxProperties: 16,
    description: `Env name → {${configField}, secret}: a token is minted for each at creation (${what}).`,
    additionalProperties: {
      type: 'object',
      additionalProperties: false,
      properties: { [configField]: ref, secret: ref },
      required: [configField, 'secret'],
    },
  });

export const devboxAgentFields = {
  gateways: specMap('gateway', 'the env prefix: {PREFIX}_URL and {PREFIX}_KEY'),
  mcp: specMap('mcp_config', 'the env var holds the token, RL_MCP_URL the hub'),
} as const;

export const devboxAgentViewFields = {
  gateway_specs: nullable({
    type: 'object',
    additionalProperties: { type: 'object', additionalProperties: false, properties: { gateway_config_id: { type: 'string' }, secret_id: { type: 'string' } }, required: ['gateway_config_id', 'secret_id'] },
  }),
  mcp_specs: nullable({
    type: 'object',
    additionalProperties: { type: 'object', additionalProperties: false, properties: { mcp_config_id: { type: 'string' }, secret_id: { type: 'string' } }, required: ['mcp_config_id', 'secret_id'] },
  }),
  agent_environment: {
    type: 'object',
    additionalProperties: { type: 'string' },
    description: 'Only in the create response, shown once: the environment the orchestrator gives the devbox for its gateways and mcp ({PREFIX}_URL, {PREFIX}_KEY, the MCP token vars, RL_MCP_URL).',
  },
} as const;
