import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, type ErrorDetail, type ErrorKind } from '../lib/errors.ts';

/**
 * Turns anything thrown while handling a request into (status, kind, message, details). Every
 * surface calls this and wraps the result in its own envelope, so all surfaces agree on statuses.
 */
export interface ClientFailure {
  status: number;
  kind: ErrorKind | 'method_not_allowed' | 'unsupported_media_type' | 'internal';
  message: string;
  details?: ErrorDetail[];
  retryAfter?: number;
}

const statusOfKind: Record<ErrorKind, number> = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  too_large: 413,
  rate_limited: 429,
  unavailable: 503,
  backend_failed: 502,
  insufficient_storage: 507,
};

const kindOfStatus: Record<number, ClientFailure['kind']> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  409: 'conflict',
  413: 'too_large',
  415: 'unsupported_media_type',
  429: 'rate_limited',
  503: 'unavailable',
};

interface AjvIssue {
  instancePath: string;
  message?: string;
  keyword: string;
  params: Record<string, unknown>;
}

function validationDetails(issues: AjvIssue[], part: string): ErrorDetail[] {
  return issues.map((i) => {
    const path = i.instancePath.replace(/^\//, '').replaceAll('/', '.');
    if (i.keyword === 'additionalProperties') {
      const extra = String(i.params.additionalProperty);
      return { field: path ? `${path}.${extra}` : extra, message: `unknown field '${extra}'` };
    }
    if (i.keyword === 'required') {
      const missing = String(i.params.missingProperty);
      return { field: path ? `${path}.${missing}` : missing, message: `'${missing}' is required` };
    }
    return { field: path || part, message: `${path || part} ${i.message ?? 'is invalid'}` };
  });
}

export function describeFailure(err: unknown, request: FastifyRequest): ClientFailure {
  if (err instanceof AppError) {
    return { status: statusOfKind[err.kind], kind: err.kind, message: err.message, details: err.details, retryAfter: err.retryAfter };
  }
  const fe = err as FastifyError & { validation?: AjvIssue[]; validationContext?: string };
  if (fe.validation) {
    const details = validationDetails(fe.validation, fe.validationContext ?? 'request');
    const where =
      fe.validationContext === 'querystring' ? 'query parameter' : fe.validationContext === 'params' ? 'path parameter' : 'field';
    return { status: 400, kind: 'bad_request', message: `invalid ${where}: ${details.map((d) => d.message).join('; ')}`, details };
  }
  if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return { status: 413, kind: 'too_large', message: `request body is larger than the limit of ${request.routeOptions.bodyLimit} bytes` };
  }
  if (fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    return {
      status: 415,
      kind: 'unsupported_media_type',
      message: `unsupported Content-Type '${request.headers['content-type'] ?? ''}'; send application/json`,
    };
  }
  const status = fe.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return { status, kind: kindOfStatus[status] ?? 'bad_request', message: fe.message };
  }
  return { status: 500, kind: 'internal', message: `internal error; quote request id ${request.id} when reporting it` };
}

/** Logs server-side failures; client mistakes are routine and stay at debug level. */
export function logFailure(request: FastifyRequest, err: unknown, failure: ClientFailure): void {
  if (failure.status >= 500) request.log.error({ err }, 'request failed');
  else request.log.debug({ err: (err as Error).message, status: failure.status }, 'request refused');
}

export function applyFailureHeaders(reply: FastifyReply, failure: ClientFailure): void {
  if (failure.retryAfter !== undefined) reply.header('retry-after', String(failure.retryAfter));
}

/**
 * Installs error and not-found handling for a surface's context: failures are described once
 * (`describeFailure`), a known path with the wrong method is 405 with `Allow`, and `send` writes
 * them in the surface's own envelope.
 */
export function useSurfaceErrors(
  app: FastifyInstance,
  allowedMethods: (method: string, url: string) => string[],
  send: (reply: FastifyReply, failure: ClientFailure) => FastifyReply,
): void {
  const reply = (r: FastifyReply, failure: ClientFailure) => {
    applyFailureHeaders(r, failure);
    return send(r.code(failure.status).type('application/json; charset=utf-8'), failure);
  };
  app.setErrorHandler((err: FastifyError, request: FastifyRequest, r: FastifyReply) => {
    const failure = describeFailure(err, request);
    logFailure(request, err, failure);
    return reply(r, failure);
  });
  app.setNotFoundHandler((request, r) => {
    const allow = allowedMethods(request.method, request.url);
    if (allow.length > 0) {
      r.header('allow', allow.join(', '));
      return reply(r, {
        status: 405,
        kind: 'method_not_allowed',
        message: `${request.method} is not allowed here; use ${allow.join(', ')}`,
      });
    }
    return reply(r, { status: 404, kind: 'not_found', message: `no route ${request.method} ${request.url.split('?')[0]}` });
  });
}
