import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { Core } from '../../jobs/core.ts';
import { performSync, PerformSyncBody, SyncInProgress, syncInfo } from '../../sync/workspace.ts';
import { actorOf } from '../auth.ts';
import { describeFailure } from '../errors.ts';

/**
 * The workspace sync surface of 001-perform-sync: envelope `{code, msg, data}`, `code` 0 on
 * success and -1 otherwise (with the HTTP status of the failure; a sync already running is 409).
 */
const tags = ['Workspace sync'];
const security = [{ bearer: [] }];
const Envelope = <T extends Parameters<typeof Type.Object>[0]>(data: T) =>
  Type.Object({ code: Type.Integer(), msg: Type.String(), data: Type.Union([Type.Object(data), Type.Null()]) });
const Failure = Type.Object({ code: Type.Integer(), msg: Type.String(), data: Type.Null() }, { title: 'PerformSyncError' });
const failures = Object.fromEntries([400, 401, 403, 409, 413, 415, 429].map((s) => [s, Failure]));
const IN_PROGRESS = 'Sync is in progress, please try again later';

export const performSyncRoutes: FastifyPluginAsyncTypebox<{ core: Core }> = async (app, { core }) => {
  app.setErrorHandler((err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    if (err instanceof SyncInProgress) return reply.code(409).send({ code: -1, msg: IN_PROGRESS, data: null });
    const failure = describeFailure(err, request);
    if (failure.status >= 500) request.log.error({ err }, 'performSync failed');
    if (failure.retryAfter !== undefined) reply.header('retry-after', String(failure.retryAfter));
    return reply.code(failure.status).send({ code: -1, msg: failure.message, data: null });
  });

  app.post(
    '/sync/performSync',
    {
      schema: {
        tags,
        summary: 'Start a workspace sync (admin); answers at once, the sync runs as a workspace_sync job',
        security,
        body: PerformSyncBody,
        response: {
          200: Envelope({ current: Type.Integer(), total: Type.Integer(), info: Type.String(), msg: Type.String() }),
          ...failures,
        },
      },
    },
    async (request) => ({ code: 0, msg: '', data: await performSync(core, actorOf(request), request.body) }),
  );

  const info = {
    200: Envelope({
      synced: Type.Integer({ description: 'Epoch ms of the last successful sync (0: never)' }),
      stat: Type.String(),
      syncing: Type.Boolean(),
      lastError: Type.String(),
    }),
    ...failures,
  };
  const handler = async (request: FastifyRequest) => ({ code: 0, msg: '', data: await syncInfo(core, actorOf(request)) });
  app.post(
    '/sync/getSyncInfo',
    {
      schema: {
        tags,
        summary: 'The last workspace sync and whether one is running',
        security,
        body: Type.Object({}, { additionalProperties: false, description: 'Nothing, or {}' }),
        response: info,
      },
      // Clients post nothing at all as often as `{}`.
      preValidation: async (request) => {
        request.body ??= {};
      },
    },
    handler,
  );
  app.get(
    '/sync/getSyncInfo',
    { schema: { tags, summary: 'The last workspace sync and whether one is running', security, response: info } },
    handler,
  );
};
