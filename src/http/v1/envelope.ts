import { Type, type TSchema } from '@sinclair/typebox';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Actor } from '../../accounts/actor.ts';
import { forbidden } from '../../errors.ts';
import { applyFailureHeaders, describeFailure, logFailure, type ClientFailure } from '../errors.ts';

/** The storage surface's envelope: `{code, message, data}`, `code` "OK" or a stable error code. */
const codeOfKind: Record<ClientFailure['kind'], string> = {
  bad_request: 'BadArgument',
  unauthorized: 'Unauthorized',
  forbidden: 'Forbidden',
  not_found: 'NotFound',
  conflict: 'Conflict',
  too_large: 'TooLarge',
  method_not_allowed: 'MethodNotAllowed',
  unsupported_media_type: 'UnsupportedMediaType',
  rate_limited: 'TooManyRequests',
  unavailable: 'OperationFailed',
  internal: 'OperationFailed',
};

export const V1Error = Type.Object(
  { code: Type.String({ description: 'BadArgument, Unauthorized, Forbidden, NotFound, Conflict, TooLarge, OperationFailed, …' }), message: Type.String(), data: Type.Null() },
  { title: 'V1Error' },
);

/** The success envelope around `data`. */
export const V1 = <T extends TSchema>(data: T) => Type.Object({ code: Type.Literal('OK'), message: Type.String(), data });
export const v1 = <T>(data: T) => ({ code: 'OK' as const, message: '', data });

export const v1ErrorResponses = Object.fromEntries([400, 401, 403, 404, 405, 409, 413].map((s) => [s, V1Error]));

function sendV1Error(reply: FastifyReply, failure: ClientFailure): FastifyReply {
  applyFailureHeaders(reply, failure);
  return reply.code(failure.status).type('application/json; charset=utf-8').send({ code: codeOfKind[failure.kind], message: failure.message, data: null });
}

/** Error and not-found handling in the storage envelope, for the context it is installed in. */
export function useV1Errors(app: FastifyInstance, allowedMethods: (method: string, url: string) => string[]): void {
  app.setErrorHandler((err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const failure = describeFailure(err, request);
    logFailure(request, err, failure);
    return sendV1Error(reply, failure);
  });
  app.setNotFoundHandler((request, reply) => {
    const allow = allowedMethods(request.method, request.url);
    if (allow.length > 0) {
      reply.header('allow', allow.join(', '));
      return sendV1Error(reply, { status: 405, kind: 'method_not_allowed', message: `${request.method} is not allowed here; use ${allow.join(', ')}` });
    }
    return sendV1Error(reply, { status: 404, kind: 'not_found', message: `no route ${request.method} ${request.url.split('?')[0]}` });
  });
}

/** A `userID` in a request, when given, must be the caller's own. */
export function assertOwnUserId(actor: Actor, userID: number | undefined): void {
  if (userID !== undefined && userID !== actor.userId) throw forbidden(`userID ${userID} is not you (you are user ${actor.userId})`);
}
