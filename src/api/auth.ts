/**
 * Bearer-token authentication for /v1: `Authorization: Bearer <token>` → account id.
 * Missing or unknown tokens get 401; every handler reads `request.accountId`.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Store } from '../store/index.js';
import { ApiError } from './errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    accountId: string;
  }
}

export function bearerToken(req: FastifyRequest): string | null {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return null;
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(h);
  return m ? m[1]! : null;
}

/** Adds the check to every route registered in this (encapsulated) instance. */
export function requireAuth(app: FastifyInstance, store: Store): void {
  app.addHook('onRequest', async (req) => {
    const token = bearerToken(req);
    if (token === null) throw new ApiError(401, 'unauthorized', 'missing bearer token: send Authorization: Bearer <token>');
    const account = store.accountForToken(token);
    if (account === null) throw new ApiError(401, 'unauthorized', 'unknown or revoked API token');
    req.accountId = account;
  });
}
