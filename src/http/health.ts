import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Core } from '../jobs/core.ts';
import { pingDatabase } from '../db/index.ts';
import { ErrorResponse } from './api/envelope.ts';

const Health = Type.Object({ status: Type.String() }, { title: 'Health' });

export const healthRoutes: FastifyPluginAsyncTypebox<{ core: Core }> = async (app, { core }) => {
  app.get(
    '/healthz',
    { config: { auth: false }, schema: { tags: ['Health'], summary: 'Liveness: the process answers', response: { 200: Health } } },
    async () => ({ status: 'ok' }),
  );
  app.get(
    '/readyz',
    {
      config: { auth: false },
      schema: { tags: ['Health'], summary: 'Readiness: the database answers', response: { 200: Health, 503: ErrorResponse } },
    },
    async (request, reply) => {
      try {
        await pingDatabase(core.db);
        return { status: 'ready' };
      } catch (err) {
        request.log.warn({ err }, 'database not reachable');
        return reply.code(503).send({ code: 'unavailable', message: 'database not reachable' });
      }
    },
  );
};
