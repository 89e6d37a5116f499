import { randomUUID } from 'node:crypto';
import cookie from '@fastify/cookie';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import websocket from '@fastify/websocket';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Core } from '../jobs/core.ts';
import { authRoutes } from './api/auth.ts';
import { sseRoutes } from './events/sse.ts';
import { wsRoutes } from './events/ws.ts';
import { usePlatformErrors } from './api/envelope.ts';
import { jobRoutes } from './api/jobs.ts';
import { syncRoutes } from './api/sync.ts';
import { performSyncRoutes } from './api/performSync.ts';
import { keyRoutes } from './api/keys.ts';
import { tenantRoutes } from './api/tenants.ts';
import { userRoutes } from './api/users.ts';
import { useAuth } from './auth.ts';
import { healthRoutes } from './health.ts';
import { bucketRoutes } from './v1/buckets.ts';
import { useOwnUserIdRule, useV1Errors } from './v1/envelope.ts';
import { objectRoutes } from './v1/objects.ts';
import { packageRoutes } from './v1/packages.ts';
import { userSpaceRoutes } from './v1/userSpaces.ts';
import { spaceSyncerRoutes } from './v1/spaceSyncer.ts';
import { trackRouteMethods } from './methods.ts';
import { useTaskErrors } from './mj/envelope.ts';
import { publicRoutes } from './public/jobs.ts';
import { taskRoutes } from './mj/tasks.ts';
import { validatorCompiler } from './validation.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** Set once the server has begun to close: every response from then on closes its connection. */
    draining: boolean;
  }
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

export async function buildApp(core: Core): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: core.log as FastifyBaseLogger,
    bodyLimit: core.config.bodyLimit,
    trustProxy: core.config.trustProxy,
    // A caller's X-Request-Id is kept when it is sane, so its logs and ours line up.
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    requestIdHeader: false,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    routerOptions: { maxParamLength: 200 },
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  // Bodies are JSON (and, for uploads, multipart): text/plain is refused with 415, not parsed.
  app.removeContentTypeParser('text/plain');
  app.decorateRequest('actor', null);
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  // While draining, every response closes its connection; otherwise a keep-alive connection whose
  // request finished after close() began would hold the server open until its idle timeout.
  // (A file body skips onSend hooks, so it reads the flag itself: see sendFileBody.)
  app.decorate('draining', false);
  app.addHook('preClose', async () => {
    app.draining = true;
  });
  app.addHook('onSend', async (_request, reply) => {
    if (app.draining) reply.header('connection', 'close');
    // How long the server took to make the answer, up to its first byte (W3C Server-Timing): it tells
    // a slow answer of the server's own from time spent on the network or in the client.
    reply.header('server-timing', `app;dur=${reply.elapsedTime.toFixed(2)}`);
  });
  const allowedMethods = trackRouteMethods(app);
  usePlatformErrors(app, allowedMethods);

  await app.register(cookie);
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Yunji',
        version: '0.1.0',
        description:
          'Self-hosted multi-tenant cross-cloud storage and sync. Authenticate with `Authorization: Bearer <session token or API key>`.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { docExpansion: 'list' } });
  app.addHook('onRoute', (route) => {
    // The documentation routes are public.
    if (route.url.startsWith('/docs')) route.config = { ...(route.config ?? {}), auth: false };
  });

  app.get('/openapi.json', { config: { auth: false }, schema: { hide: true } }, async () => app.swagger());
  await app.register(healthRoutes, { core });
  await app.register(
    async (api) => {
      useAuth(api, core);
      await api.register(authRoutes, { core });
      await api.register(tenantRoutes, { core });
      await api.register(userRoutes, { core });
      await api.register(keyRoutes, { core });
      await api.register(jobRoutes, { core });
      await api.register(sseRoutes, { core });
      await api.register(syncRoutes, { core });
      await api.register(performSyncRoutes, { core });
    },
    { prefix: '/api' },
  );
  await app.register(
    async (storage) => {
      useV1Errors(storage, allowedMethods);
      useAuth(storage, core);
      useOwnUserIdRule(storage);
      await storage.register(bucketRoutes, { core });
      await storage.register(packageRoutes, { core });
      await storage.register(objectRoutes, { core });
      await storage.register(userSpaceRoutes, { core });
      await storage.register(spaceSyncerRoutes, { core });
    },
    { prefix: '/v1' },
  );
  await app.register(
    async (project) => {
      useAuth(project, core);
      await project.register(publicRoutes, { core });
    },
    { prefix: '/public' },
  );
  await app.register(websocket, { options: { maxPayload: 64 * 1024 } });
  await app.register(async (ws) => {
    useAuth(ws, core);
    await ws.register(wsRoutes, { core });
  });
  await app.register(
    async (tasks) => {
      useTaskErrors(tasks, allowedMethods);
      useAuth(tasks, core);
      await tasks.register(taskRoutes, { core });
    },
    { prefix: '/mj' },
  );
  return app;
}
