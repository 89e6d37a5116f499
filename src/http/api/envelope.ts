import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { useSurfaceErrors, type ClientFailure } from '../errors.ts';

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

/** Error and not-found handling in ErrorResponse form, for the context it is installed in. */
export function usePlatformErrors(app: FastifyInstance, allowedMethods: (method: string, url: string) => string[]): void {
  useSurfaceErrors(app, allowedMethods, (reply, failure) => reply.send(toErrorResponse(failure)));
}

/** Standard error responses for OpenAPI. */
export const errorResponses = Object.fromEntries([400, 401, 403, 404, 409, 413, 429].map((s) => [s, ErrorResponse]));
