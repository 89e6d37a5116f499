import { Type, type Static } from '@sinclair/typebox';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { applyFailureHeaders, describeFailure, logFailure, type ClientFailure } from '../errors.ts';

/** The platform surface's error body. */
export const ErrorResponse = Type.Object(
  {
    code: Type.String({ description: 'Stable machine-readable code, e.g. bad_request, not_found, conflict.' }),
    message: Type.String({ description: 'What was wrong, naming the field or limit.' }),
    details: Type.Optional(Type.Array(Type.Object({ field: Type.Optional(Type.String()), message: Type.String() }))),
  },
  { title: 'ErrorResponse' },
);
export type ErrorResponse = Static<typeof ErrorResponse>;

export function toErrorResponse(f: ClientFailure): ErrorResponse {
  return { code: f.kind === 'internal' ? 'internal_error' : f.kind, message: f.message, ...(f.details ? { details: f.details } : {}) };
}

export function sendPlatformError(reply: FastifyReply, failure: ClientFailure): FastifyReply {
  applyFailureHeaders(reply, failure);
  return reply.code(failure.status).type('application/json; charset=utf-8').send(toErrorResponse(failure));
}

/** Error and not-found handling in ErrorResponse form, for the context it is installed in. */
export function usePlatformErrors(app: FastifyInstance, allowedMethods: (method: string, url: string) => string[]): void {
  app.setErrorHandler((err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const failure = describeFailure(err, request);
    logFailure(request, err, failure);
    return sendPlatformError(reply, failure);
  });
  app.setNotFoundHandler((request, reply) => {
    const allow = allowedMethods(request.method, request.url);
    if (allow.length > 0) {
      reply.header('allow', allow.join(', '));
      return sendPlatformError(reply, { status: 405, kind: 'method_not_allowed', message: `${request.method} is not allowed here; use ${allow.join(', ')}` });
    }
    return sendPlatformError(reply, { status: 404, kind: 'not_found', message: `no route ${request.method} ${request.url.split('?')[0]}` });
  });
}

/** Standard error responses for OpenAPI. */
export const errorResponses = Object.fromEntries([400, 401, 403, 404, 409, 413, 429].map((s) => [s, ErrorResponse]));
