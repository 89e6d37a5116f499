import { Type, type TSchema } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Actor } from '../../accounts/actor.ts';
import { forbidden } from '../../lib/errors.ts';
import { useSurfaceErrors, type ClientFailure } from '../errors.ts';

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
  backend_failed: 'OperationFailed',
  insufficient_storage: 'OperationFailed',
  internal: 'OperationFailed',
};

export const V1Error = Type.Object(
  {
    code: Type.String({ description: 'BadArgument, Unauthorized, Forbidden, NotFound, Conflict, TooLarge, OperationFailed, …' }),
    message: Type.String(),
    data: Type.Null(),
  },
  { title: 'V1Error' },
);

/** The success envelope around `data`. */
export const V1 = <T extends TSchema>(data: T) => Type.Object({ code: Type.Literal('OK'), message: Type.String(), data });
export const v1 = <T>(data: T) => ({ code: 'OK' as const, message: '', data });

export const v1ErrorResponses = Object.fromEntries([400, 401, 403, 404, 405, 409, 413, 502, 507].map((s) => [s, V1Error]));

/** The storage envelope of a failure. */
export const v1ErrorBody = (failure: Pick<ClientFailure, 'kind' | 'message'>) => ({
  code: codeOfKind[failure.kind],
  message: failure.message,
  data: null,
});

/** Error and not-found handling in the storage envelope, for the context it is installed in. */
export function useV1Errors(app: FastifyInstance, allowedMethods: (method: string, url: string) => string[]): void {
  useSurfaceErrors(app, allowedMethods, (reply, failure) => reply.send(v1ErrorBody(failure)));
}

/**
 * The storage surface's rule for every JSON body: a `userID`, when given, is the caller's own.
 * (Multipart requests carry it in their `info` part, checked where that part is read.)
 */
export function useOwnUserIdRule(app: FastifyInstance): void {
  app.addHook('preHandler', async (request) => {
    const userID = (request.body as { userID?: unknown } | null | undefined)?.userID;
    if (request.actor && typeof userID === 'number') assertOwnUserId(request.actor, userID);
  });
}

/** A `userID` in a request, when given, must be the caller's own. */
export function assertOwnUserId(actor: Actor, userID: number | undefined): void {
  if (userID !== undefined && userID !== actor.userId) throw forbidden(`userID ${userID} is not you (you are user ${actor.userId})`);
}
