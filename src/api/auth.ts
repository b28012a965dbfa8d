/**
 * Bearer-token authentication for /v1: `Authorization: Bearer <token>` → account id.
 * Missing or unknown tokens get 401; every handler reads `request.accountId`.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ControlStore } from '../store/backend.js';
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

/**
 * Failed authentications are logged at most once a second (a guessing client cannot flood the
 * log); the line counts the failures since the previous one.
 */
class AuthFailureLog {
  private last = 0;
  private unlogged = 0;

  note(req: FastifyRequest, reason: 'missing_token' | 'unknown_token'): void {
    this.unlogged++;
    const now = Date.now();
    if (now - this.last < 1000) return;
    this.last = now;
    req.log.warn({ event: 'api_auth_failed', source: req.ip, reason, method: req.method, url: req.url.slice(0, 200), failures: this.unlogged }, `API authentication failed (${reason}) from ${req.ip}`);
    this.unlogged = 0;
  }
}

/** Adds the check to every route registered in this (encapsulated) instance. */
export function requireAuth(app: FastifyInstance, store: ControlStore): void {
  const failures = new AuthFailureLog();
  app.addHook('onRequest', async (req) => {
    const token = bearerToken(req);
    if (token === null) {
      failures.note(req, 'missing_token');
      throw new ApiError(401, 'unauthorized', 'missing bearer token: send Authorization: Bearer <token>');
    }
    const account = await store.tokens.accountFor(token);
    if (account === null) {
      failures.note(req, 'unknown_token');
      throw new ApiError(401, 'unauthorized', 'unknown or revoked API token');
    }
    req.accountId = account;
  });
}
