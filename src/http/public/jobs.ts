import { Type, type FastifyPluginAsyncTypebox, type TSchema } from '@fastify/type-provider-typebox';
import type { Actor } from '../../accounts/actor.ts';
import type { Core } from '../../jobs/core.ts';
import { AppError, badRequest, notFound } from '../../lib/errors.ts';
import { actorCancel, actorJob, actorJobs, checkJobId } from '../../jobs/service.ts';
import { PublicJob, publicJob } from '../jobViews.ts';
import { requestUserDataDeletion } from '../../storage/userData.ts';
import { actorOf } from '../auth.ts';
import { errorResponses } from '../api/envelope.ts';

const tags = ['Project jobs'];
const security = [{ bearer: [] }];
const Data = <T extends TSchema>(data: T) => Type.Object({ data });

/**
 * The project surface (003-jobs-api): `/public/{projectKey}/…` with an API key (or session) of that
 * project's tenant. Another project's key is answered 404, as if the project did not exist.
 */
async function projectActor(core: Core, actor: Actor, projectKey: string): Promise<Actor> {
  const row = await core.db.selectFrom('tenants').select('id').where('project_key', '=', projectKey).executeTakeFirst();
  if (!row || row.id !== actor.tenantId) throw notFound(`project '${projectKey.slice(0, 64)}'`);
  return actor;
}

/** The spec's lenient paging: a limit outside 1–200 (or not a number) is 50; a page below 1 (or not a number) is 1. */
function lenientInt(raw: string | undefined, fallback: number, ok: (n: number) => boolean): number {
  if (raw === undefined || !/^-?\d{1,9}$/.test(raw)) return fallback;
  const n = Number(raw);
  return ok(n) ? n : fallback;
}

export const publicRoutes: FastifyPluginAsyncTypebox<{ core: Core }> = async (app, { core }) => {
  const ProjectParams = Type.Object({ projectKey: Type.String({ minLength: 1, maxLength: 64 }) });
  const JobParams = Type.Object({ projectKey: Type.String({ minLength: 1, maxLength: 64 }), jobId: Type.String({ maxLength: 40 }) });

  app.get(
    '/:projectKey/jobs',
    {
      schema: {
        tags,
        summary: "The project's jobs, newest first",
        security,
        params: ProjectParams,
        querystring: Type.Object({
          limit: Type.Optional(Type.String({ maxLength: 40 })),
          page: Type.Optional(Type.String({ maxLength: 40 })),
        }),
        response: { 200: Data(Type.Array(PublicJob)), ...errorResponses },
      },
    },
    async (request) => {
      const actor = await projectActor(core, actorOf(request), request.params.projectKey);
      const limit = lenientInt(request.query.limit, 50, (n) => n >= 1 && n <= 200);
      const page = lenientInt(request.query.page, 1, (n) => n >= 1);
      const { jobs } = await actorJobs(core, actor, { offset: (page - 1) * limit, limit });
      return { data: jobs.map(publicJob) };
    },
  );

  app.get(
    '/:projectKey/jobs/:jobId',
    { schema: { tags, summary: 'One job', security, params: JobParams, response: { 200: Data(PublicJob), ...errorResponses } } },
    async (request) => {
      const actor = await projectActor(core, actorOf(request), request.params.projectKey);
      return { data: publicJob(await actorJob(core, actor, checkJobId(request.params.jobId))) };
    },
  );

  app.delete(
    '/:projectKey/jobs/:jobId',
    {
      schema: {
        tags,
        summary: 'Cancel a job that has not started or is still running',
        description: '400 when the job has already finished (it cannot be cancelled in its state) or the id is not an integer.',
        security,
        params: JobParams,
        response: { 200: Data(PublicJob), ...errorResponses },
      },
    },
    async (request) => {
      const actor = await projectActor(core, actorOf(request), request.params.projectKey);
      const id = checkJobId(request.params.jobId);
      try {
        return { data: publicJob(await actorCancel(core, actor, id)) };
      } catch (err) {
        // The spec answers "cannot be cancelled in its current state" with 400.
        if (err instanceof AppError && err.kind === 'conflict') throw badRequest(err.message, 'jobId');
        throw err;
      }
    },
  );

  app.delete(
    '/:projectKey/users/:userId',
    {
      schema: {
        tags,
        summary: "Request the erasure of a user's data in the project",
        description:
          '`userId` is an account id (a positive integer) or an email address; anything else is 400. Every such identifier is accepted alike, whether or not it names an account or a member: ' +
          'the answer is a `delete_user_data` job (referenceId: the identifier, emails in lower case) that starts after `YUNJI_DELETE_DELAY` seconds, or at `startAt` (epoch ms, not in the past), so it can be cancelled meanwhile. ' +
          'When it runs it deletes the objects that identity created in the project (none where there are none) and its result says how many (`objectsDeleted`). ' +
          'A request still pending for the same identifier is returned as is; an id and an email are separate requests. Admins.',
        security,
        params: Type.Object({
          projectKey: Type.String({ minLength: 1, maxLength: 64 }),
          userId: Type.String({ minLength: 1, maxLength: 254 }),
        }),
        querystring: Type.Object({ startAt: Type.Optional(Type.Integer({ minimum: 0, maximum: 8_640_000_000_000_000 })) }),
        response: { 200: Data(PublicJob), ...errorResponses },
      },
    },
    async (request) => {
      const actor = await projectActor(core, actorOf(request), request.params.projectKey);
      return { data: publicJob(await requestUserDataDeletion(core, actor, request.params.userId, request.query.startAt)) };
    },
  );
};
