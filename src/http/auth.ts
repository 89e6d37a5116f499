import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { authenticate, requireActiveMembership, type Actor } from '../accounts/actor.ts';
import type { AuthSession } from '../accounts/models.ts';
import type { Core } from '../jobs/core.ts';
import { unauthorized } from '../lib/errors.ts';

export const SESSION_COOKIE = 'yunji_session';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the auth hook on every route that does not opt out. */
    actor: Actor | null;
  }
  interface FastifyContextConfig {
    /** `false`: no credentials needed; `'optional'`: used when present. Default: required. */
    auth?: false | 'optional';
    /** Also take the token from `?token=` (WebSocket and EventSource clients cannot set headers). */
    queryToken?: boolean;
    /**
     * Also serve an actor whose membership in its current tenant is not active (disabled): only
     * for the routes that show them where they stand or let them leave. Default: 403.
     */
    inactiveMembership?: boolean;
  }
}

const MAX_TOKEN_LENGTH = 256;

/** Where a request's token came from. */
export type TokenSource = 'header' | 'query' | 'cookie';

/** The bearer token of a request: `Authorization: Bearer …`, else `?token=` where the route allows it, else the session cookie. */
export function requestToken(request: FastifyRequest): string | undefined {
  return requestCredential(request)?.token;
}

/** The token of a request and where it came from (see requestToken). */
export function requestCredential(request: FastifyRequest): { token: string; from: TokenSource } | undefined {
  const header = request.headers.authorization;
  if (header !== undefined) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match?.[1]) throw unauthorized('Authorization header must be "Bearer <token>"');
    return { token: match[1], from: 'header' };
  }
  if (request.routeOptions.config.queryToken) {
    const token = (request.query as { token?: unknown } | undefined)?.token;
    if (typeof token === 'string' && token !== '') return { token, from: 'query' };
  }
  const cookie = request.cookies?.[SESSION_COOKIE];
  return cookie ? { token: cookie, from: 'cookie' } : undefined;
}

/**
 * Authenticates every request of the context it is installed in, unless the route opts out, and
 * refuses (403) an actor whose membership in its tenant is not active, unless the route opts in.
 */
export function useAuth(app: FastifyInstance, core: Core): void {
  app.addHook('onRequest', async (request) => {
    const mode = request.routeOptions.config.auth;
    if (mode === false) return;
    const token = requestToken(request);
    if (!token) {
      if (mode === 'optional') return;
      throw unauthorized('authentication required: send "Authorization: Bearer <token>" or log in');
    }
    if (token.length > MAX_TOKEN_LENGTH) throw unauthorized('invalid token');
    request.actor = await authenticate(core, token);
    if (!request.routeOptions.config.inactiveMembership) requireActiveMembership(request.actor);
  });
}

/** The authenticated actor of a route that requires one. */
export function actorOf(request: FastifyRequest): Actor {
  if (!request.actor) throw unauthorized();
  return request.actor;
}

export function setSessionCookie(reply: FastifyReply, core: Core, session: AuthSession): void {
  reply.setCookie(SESSION_COOKIE, session.token, {
    httpOnly: true,
    sameSite: 'lax',
    secure: core.config.cookieSecure,
    path: '/',
    maxAge: core.config.sessionTtl,
  });
}

export function clearSessionCookie(reply: FastifyReply, core: Core): void {
  reply.clearCookie(SESSION_COOKIE, { httpOnly: true, sameSite: 'lax', secure: core.config.cookieSecure, path: '/' });
}
