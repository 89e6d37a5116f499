import type { FastifyInstance } from 'fastify';
import { useSurfaceErrors } from '../errors.ts';

/** Failures on the task surface: its envelope `{code, description, result, properties}` with the HTTP status of the failure. */
export function useTaskErrors(app: FastifyInstance, allowedMethods: (method: string, url: string) => string[]): void {
  useSurfaceErrors(app, allowedMethods, (reply, failure) =>
    reply.send({ code: failure.status, description: failure.message, result: null, properties: {} }),
  );
}
