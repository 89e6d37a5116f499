import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Core } from '../../jobs/core.ts';
import { AppError } from '../../lib/errors.ts';
import { actorJob, followUp, FollowUpRefused, jobIdOf } from '../../jobs/service.ts';
import { jobsByIds } from '../../jobs/store.ts';
import { task, Task } from '../jobViews.ts';
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
    code: Type.Integer({
      description:
        '1: submitted; 22: submitted, queued behind busy workers; 3: no such task; 4: not an action of that task (or the task has not finished).',
    }),
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
        description:
          "An id that is not a positive integer, or no task of your tenant: 404 (another tenant's task is as absent as a missing one).",
        security,
        params: Type.Object({ id: Type.String({ maxLength: 1000 }) }),
        response: { 200: Task, ...taskErrors },
      },
    },
    async (request) => {
      const actor = actorOf(request);
      const id = jobIdOf(request.params.id);
      if (id === undefined) throw new AppError('not_found', `task '${request.params.id.slice(0, 40)}' not found`);
      return view(await actorJob(core, actor, id));
    },
  );

  app.post(
    '/task/list-by-condition',
    {
      schema: {
        tags,
        summary: 'Tasks by id',
        description: `Up to ${MAX_IDS} ids, as strings; ids that are not tasks of your tenant are left out. The answer keeps the order of \`ids\` (an id asked twice is answered twice).`,
        security,
        body: Type.Object({ ids: Type.Array(Type.String({ maxLength: 40 }), { maxItems: MAX_IDS }) }, { additionalProperties: false }),
        response: { 200: Type.Array(Task), ...taskErrors },
      },
    },
    async (request) => {
      const actor = actorOf(request);
      requireRole(actor, 'viewer');
      const wanted = request.body.ids.map(jobIdOf);
      const ids = [...new Set(wanted.filter((id) => id !== undefined))];
      const byId = new Map((await jobsByIds(core, actor.tenantId, ids)).map((j) => [j.id, j]));
      return wanted.flatMap((id) => {
        const job = id === undefined ? undefined : byId.get(id);
        return job ? [view(job)] : [];
      });
    },
  );

  app.post(
    '/submit/action',
    {
      schema: {
        tags,
        summary: 'Take a follow-up action on a finished task',
        description:
          "customId is one of the task's `buttons` (`yunji::rerun::<id>`, `yunji::retry::<id>` …). The new task records the original as `parentId`. " +
          "Answered 200 with `code` 1 (submitted; `result` is the new task id), 22 (submitted but queued behind the tenant's busy workers: `properties.numberOfQueues`), " +
          "3 (no such task of your tenant) or 4 (not one of that task's buttons, or the task has not finished). A malformed body is 400. " +
          "`chooseSameChannel` is required by the spec and has no effect here (one pool of workers). An empty or absent `notifyHook` keeps the original task's hook, else the tenant's default; " +
          'a hook to a loopback, private or link-local address is 400 unless the server allows them.',
        security,
        body: Type.Object(
          {
            chooseSameChannel: Type.Boolean({ description: 'Required; no effect (Yunji has one pool of workers).' }),
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
        const { job, queuedAhead } = await followUp(core, actorOf(request), {
          taskId: b.taskId,
          customId: b.customId,
          notifyHook: b.notifyHook,
          state: b.state,
        });
        const properties = { parentId: String(job.parentId), action: job.action };
        if (queuedAhead > 0)
          return {
            code: 22,
            description: 'Queued behind busy workers',
            result: String(job.id),
            properties: { ...properties, numberOfQueues: queuedAhead },
          };
        return { code: 1, description: 'Success', result: String(job.id), properties };
      } catch (err) {
        if (err instanceof FollowUpRefused)
          return { code: err.reason === 'no_task' ? 3 : 4, description: err.message, result: null, properties: {} };
        throw err;
      }
    },
  );
};
