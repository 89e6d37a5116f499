import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Core } from '../../jobs/core.ts';
import { Id } from '../../lib/schema.ts';
import { CreateSpaceSyncTaskBody, SpaceSyncTask } from '../../sync/models.ts';
import { cancelSpaceSyncTask, createSpaceSyncTask, getSpaceSyncTask, listSpaceSyncTasks, runSpaceSyncTask } from '../../sync/tasks.ts';
import { actorOf } from '../auth.ts';
import { V1, v1, v1ErrorResponses } from './envelope.ts';

const tags = ['Storage: space sync tasks'];
const security = [{ bearer: [] }];
const TaskRef = Type.Object({ taskID: Id, userID: Type.Optional(Id) }, { additionalProperties: false });
const one = { 200: V1(Type.Object({ task: SpaceSyncTask })), ...v1ErrorResponses };

export const spaceSyncerRoutes: FastifyPluginAsyncTypebox<{ core: Core }> = async (app, { core }) => {
  app.post(
    '/spaceSyncer/createTask',
    {
      schema: {
        tags,
        summary: 'Create a sync task from a folder of one user space to folders of others (runs are space_sync jobs)',
        description: 'Trigger Interval (runs now, then every interval seconds), Once (runs now) or Manual (runTask). See docs/SYNC.md.',
        security,
        body: CreateSpaceSyncTaskBody,
        response: one,
      },
    },
    async (request) => v1({ task: await createSpaceSyncTask(core, actorOf(request), request.body) }),
  );

  app.get(
    '/spaceSyncer/getTask',
    { schema: { tags, summary: 'A sync task', security, querystring: Type.Object({ taskID: Id }), response: one } },
    async (request) => v1({ task: await getSpaceSyncTask(core, actorOf(request), request.query.taskID) }),
  );

  app.get(
    '/spaceSyncer/listTasks',
    {
      schema: {
        tags,
        summary: "The tenant's sync tasks that are not cancelled, newest first",
        security,
        response: { 200: V1(Type.Object({ tasks: Type.Array(SpaceSyncTask) })), ...v1ErrorResponses },
      },
    },
    async (request) => v1({ tasks: await listSpaceSyncTasks(core, actorOf(request)) }),
  );

  app.post(
    '/spaceSyncer/runTask',
    {
      schema: {
        tags,
        summary: 'Run a sync task now; 409 while a run of it is pending or running',
        security,
        body: TaskRef,
        response: { 200: V1(Type.Object({ jobID: Id })), ...v1ErrorResponses },
      },
    },
    async (request) => v1(await runSpaceSyncTask(core, actorOf(request), request.body.taskID)),
  );

  app.post(
    '/spaceSyncer/cancelTask',
    {
      schema: {
        tags,
        summary: "Stop a sync task's schedule and its running run",
        security,
        body: TaskRef,
        response: { 200: V1(Type.Null()), ...v1ErrorResponses },
      },
    },
    async (request) => {
      await cancelSpaceSyncTask(core, actorOf(request), request.body.taskID);
      return v1(null);
    },
  );
};
