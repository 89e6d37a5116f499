import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Core } from '../../core.ts';
import { AppError } from '../../errors.ts';
import { actorJob, followUp, FollowUpRefused } from '../../jobs/service.ts';
import { jobsByIds } from '../../jobs/store.ts';
import { task, Task } from '../../jobs/views.ts';
import { actorOf } from '../auth.ts';
import { requireRole } from '../../accounts/actor.ts';

const tags = ['Tasks'];
const security = [{ bearer: [] }];

const TaskError = Type.Object(
  { code: Type.Integer(), description: Type.String(), result: Type.Null(), properties: Type.Object({}) },
  { title: 'TaskError', description: 'A failure: `code` is the HTTP status.' },
);
const taskErrors = Object.fromEntries([400, 401, 403, 404, 409, 413].map((s) => [s, TaskError]));

const SubmitResult = Type.Object(
  {
    code: Type.Integer({ description: '1: submitted; 22: submitted, queued behind busy workers; 3: no such task; 4: not an action of that task (or the task has not finished).' }),
    description: Type.String(),
    result: Type.Union([Type.String(), Type.Null()], { description: 'The new task id.' }),
    properties: Type.Record(Type.String(), Type.Unknown()),
  },
  { title: 'SubmitResult' },
);

const TaskIdText = Type.String({ minLength: 1, maxLength: 40 });
const MAX_IDS = 1000;

/**
 * The task surface (002-task-action): jobs shown as tasks, and follow-up actions on finished ones.
 * Application outcomes of `submit/action` are answered 200 with their `code`, as the spec's clients
 * read it; malformed requests are HTTP errors in the same envelope.
 */
export const taskRoutes: FastifyPluginAsyncTypebox<{ core: Core }> = async (app, { core }) => {
  const view = (job: Parameters<typeof task>[0]) => task(job, core.jobs.actions);

  app.get(
    '/task/:id/fetch',
    {
      schema: {
        tags,
        summary: 'One task',
        description: 'An id that is not a number, or no task of your tenant: 404.',
        security,
        params: Type.Object({ id: TaskIdText }),
        response: { 200: Task, ...taskErrors },
      },
    },
    async (request) => {
      const actor = actorOf(request);
      if (!/^[1-9]\d{0,15}$/.test(request.params.id)) throw new AppError('not_found', `task '${request.params.id}' not found`);
      return view(await actorJob(core, actor, Number(request.params.id)));
    },
  );

  app.post(
    '/task/list-by-condition',
    {
      schema: {
        tags,
        summary: 'Tasks by id',
        description: `Up to ${MAX_IDS} ids; ids that are not tasks of your tenant are left out. The answer keeps the order of \`ids\`.`,
        security,
        body: Type.Object({ ids: Type.Array(TaskIdText, { maxItems: MAX_IDS }) }, { additionalProperties: false }),
        response: { 200: Type.Array(Task), ...taskErrors },
      },
    },
    async (request) => {
      const actor = actorOf(request);
      requireRole(actor, 'viewer');
      const ids = [...new Set(request.body.ids.filter((id) => /^[1-9]\d{0,15}$/.test(id)).map(Number))];
      const byId = new Map((await jobsByIds(core, actor.tenantId, ids)).map((j) => [j.id, j]));
      return request.body.ids.flatMap((id) => {
        const job = byId.get(Number(id));
        return job && /^[1-9]\d{0,15}$/.test(id) ? [view(job)] : [];
      });
    },
  );

  app.post(
    '/submit/action',
    {
      schema: {
        tags,
        summary: 'Take a follow-up action on a finished task',
        description: 'customId is one of the task\'s `buttons` (`yunji::rerun::<id>`, `yunji::retry::<id>` …). The new task records the original as `parentId`.',
        security,
        body: Type.Object(
          {
            chooseSameChannel: Type.Boolean(),
            customId: Type.String({ minLength: 1, maxLength: 200 }),
            taskId: TaskIdText,
            notifyHook: Type.Optional(Type.String({ maxLength: 2048 })),
            state: Type.Optional(Type.String({ maxLength: 4096 })),
          },
          { additionalProperties: false },
        ),
        response: { 200: SubmitResult, ...taskErrors },
      },
    },
    async (request) => {
      const b = request.body;
      try {
        const { job, queuedAhead } = await followUp(core, actorOf(request), { taskId: b.taskId, customId: b.customId, notifyHook: b.notifyHook, state: b.state });
        const properties = { parentId: b.taskId, action: job.action };
        if (queuedAhead > 0) return { code: 22, description: 'Queued behind busy workers', result: String(job.id), properties: { ...properties, numberOfQueues: queuedAhead } };
        return { code: 1, description: 'Success', result: String(job.id), properties };
      } catch (err) {
        if (err instanceof FollowUpRefused) return { code: err.reason === 'no_task' ? 3 : 4, description: err.message, result: null, properties: {} };
        throw err;
      }
    },
  );
};
