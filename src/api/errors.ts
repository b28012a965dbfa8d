/**
 * One JSON error shape for every failure, Fastify's own included:
 *
 *   { "error": { "code": "invalid_request", "message": "…", "status": 400 } }
 *
 * Validation messages name the field (`allowed_hostnames[2]`, `limit`) and, where there is
 * one, the offending value.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { StoreError, storageFault } from '../store/index.js';
import { storeUnavailable } from './routes/metrics.js';

export type ErrorCode =
  | 'invalid_request'
  | 'duplicate_name'
  | 'policy_in_use'
  | 'secret_in_use'
  | 'address_in_use'
  | 'address_unavailable'
  | 'quota_exceeded'
  | 'unauthorized'
  | 'not_found'
  | 'method_not_allowed'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'internal_error'
  | 'storage_unavailable'
  | 'service_unavailable'
  | 'read_only_follower';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export const badRequest = (message: string) => new ApiError(400, 'invalid_request', message);
export const notFound = (message: string) => new ApiError(404, 'not_found', message);

export interface ErrorBody {
  error: { code: ErrorCode; message: string; status: number };
}

export function errorBody(status: number, code: ErrorCode, message: string): ErrorBody {
  return { error: { code, message, status } };
}

interface AjvError {
  keyword: string;
  instancePath: string;
  message?: string;
  params: Record<string, unknown>;
}

/** `/allowed_cidrs/0/ports/1/port` → `allowed_cidrs[0].ports[1].port` */
function fieldPath(instancePath: string, extra?: string): string {
  const parts = instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (extra !== undefined) parts.push(extra);
  let out = '';
  for (const p of parts) out += /^\d+$/.test(p) ? `[${p}]` : out === '' ? p : `.${p}`;
  return out;
}

function describeValidation(context: string, errors: AjvError[]): string {
  const e = errors[0];
  const where = context === 'querystring' ? 'query parameter' : context === 'params' ? 'path parameter' : 'field';
  if (!e) return `invalid ${context}`;
  const p = e.params;
  switch (e.keyword) {
    case 'additionalProperties': {
      const name = fieldPath(e.instancePath, String(p.additionalProperty));
      return `unknown ${where} "${name}"`;
    }
    case 'required':
      return `missing required ${where} "${fieldPath(e.instancePath, String(p.missingProperty))}"`;
    case 'type': {
      const name = fieldPath(e.instancePath);
      const type = String(p.type).replace(/,null$/, '');
      return name === '' ? `request ${context === 'body' ? 'body' : context} must be a JSON ${type}` : `${where} "${name}" must be ${/^[aeiou]/.test(type) ? 'an' : 'a'} ${type}`;
    }
    case 'enum':
      return `${where} "${fieldPath(e.instancePath)}" must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'minLength':
      return p.limit === 1 ? `${where} "${fieldPath(e.instancePath)}" must not be empty` : `${where} "${fieldPath(e.instancePath)}" must be at least ${String(p.limit)} characters`;
    case 'maxLength':
      return `${where} "${fieldPath(e.instancePath)}" must be at most ${String(p.limit)} characters`;
    case 'minimum':
    case 'maximum':
      return `${where} "${fieldPath(e.instancePath)}" must be ${e.keyword === 'minimum' ? '>=' : '<='} ${String(p.limit)}`;
    default:
      return `${where} "${fieldPath(e.instancePath) || context}" ${e.message ?? 'is invalid'}`;
  }
}

/** Maps anything thrown in a request to the error shape and status. */
export function toErrorBody(err: unknown): ErrorBody {
  if (err instanceof ApiError) return errorBody(err.status, err.code, err.message);
  if (err instanceof StoreError) {
    switch (err.code) {
      case 'not_found':
        return errorBody(404, 'not_found', err.message);
      case 'duplicate_name':
        return errorBody(400, 'duplicate_name', err.message);
      case 'policy_in_use':
        return errorBody(400, 'policy_in_use', err.message);
      case 'secret_in_use':
        return errorBody(400, 'secret_in_use', err.message);
      case 'secrets_unavailable':
        return errorBody(503, 'service_unavailable', err.message);
      case 'address_in_use':
        return errorBody(400, 'address_in_use', err.message);
      case 'address_unavailable':
        return errorBody(409, 'address_unavailable', err.message);
      case 'quota_exceeded':
        return errorBody(403, 'quota_exceeded', err.message);
      case 'too_large':
        return errorBody(413, 'payload_too_large', err.message);
      case 'devbox_not_running':
      case 'policy_not_found':
      case 'blueprint_not_found':
      case 'blueprint_not_ready':
      case 'invalid_transition':
      case 'ambiguous':
        return errorBody(400, 'invalid_request', err.message);
    }
  }
  // Disk full, read-only, I/O error, locked: the request was fine, the store is not.
  const fault = storageFault(err);
  if (fault) return errorBody(503, 'storage_unavailable', fault.message);
  const fe = err as FastifyError & { validation?: AjvError[]; validationContext?: string };
  if (fe.validation) return errorBody(400, 'invalid_request', describeValidation(fe.validationContext ?? 'body', fe.validation));
  switch (fe.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return errorBody(413, 'payload_too_large', 'request body is larger than 1 MiB');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return errorBody(415, 'unsupported_media_type', 'request body must be JSON (Content-Type: application/json)');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return errorBody(400, 'invalid_request', 'Content-Length does not match the body');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return errorBody(400, 'invalid_request', `request body is not valid JSON: ${fe.message}`);
  }
  if (err instanceof SyntaxError) return errorBody(400, 'invalid_request', `request body is not valid JSON: ${err.message}`);
  const status = typeof fe.statusCode === 'number' ? fe.statusCode : 500;
  if (status === 503) return errorBody(503, 'service_unavailable', 'the gateway is shutting down');
  if (status >= 400 && status < 500) {
    const code: ErrorCode = status === 401 ? 'unauthorized' : status === 404 ? 'not_found' : status === 405 ? 'method_not_allowed' : status === 413 ? 'payload_too_large' : 'invalid_request';
    return errorBody(status, code, fe.message);
  }
  return errorBody(500, 'internal_error', 'internal error');
}

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: unknown, req: FastifyRequest, reply: FastifyReply) => {
    const body = toErrorBody(err);
    const fault = storageFault(err);
    if (fault) {
      storeUnavailable.inc({ error: fault.code });
      req.log.error({ event: 'storage_unavailable', error: fault.code, method: req.method, url: req.url.split('?')[0] }, fault.message);
    } else if (body.error.status >= 500) req.log.error({ err }, 'request failed');
    else req.log.debug({ code: body.error.code, msg: body.error.message }, 'request rejected');
    void reply.code(body.error.status).type('application/json; charset=utf-8').send(body);
  });
  app.setNotFoundHandler((req: FastifyRequest, reply: FastifyReply) => {
    void reply.code(404).send(errorBody(404, 'not_found', `no route for ${req.method} ${req.url.split('?')[0]}`));
  });
}
