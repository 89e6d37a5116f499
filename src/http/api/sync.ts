import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Id } from '../../lib/schema.ts';
import type { Core } from '../../jobs/core.ts';
import { badRequest } from '../../lib/errors.ts';
import { PlatformJob, platformJob, statusFilter } from '../jobViews.ts';
import { pageMeta, PageOf, PageQuery, pageWindow } from '../../lib/paging.ts';
import { listSourceSyncJobs, sourceSyncJob, startSourceSync } from '../../sync/sourceSync.ts';
import {
  CreateSourceBody,
  createSource,
  deleteSource,
  ExternalDataSource,
  listSources,
  ownSource,
  toSource,
  UpdateSourceBody,
  updateSource,
} from '../../sync/sources.ts';
import { getWorkspace, putWorkspace, WorkspaceProfile } from '../../sync/workspace.ts';
import { actorOf } from '../auth.ts';
import { errorResponses } from './envelope.ts';

const tags = ['Sync'];
const security = [{ bearer: [] }];
const IdParams = Type.Object({ id: Id });
const CreateSyncJobRequest = Type.Object(
  {
    source: Type.Optional(
      Type.String({ minLength: 1, maxLength: 255, description: "A source's name (or id); absent: the tenant's default source" }),
    ),
  },
  { additionalProperties: false, title: 'CreateSyncJobRequest' },
);

export const syncRoutes: FastifyPluginAsyncTypebox<{ core: Core }> = async (app, { core }) => {
  const view = (job: Parameters<typeof platformJob>[0]) => platformJob(job, core.jobs.actions);

  // `POST /api/sync/jobs` may come with an empty body (the default source), also when its content type says JSON.
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    const text = String(body);
    if (text.trim() === '') return done(null, {});
    try {
      done(null, JSON.parse(text));
    } catch {
      done(badRequest('the body is not valid JSON'), undefined);
    }
  });

  app.post(
    '/sync/sources',
    {
      schema: {
        tags,
        summary: 'Add an external data source (admin)',
        security,
        body: CreateSourceBody,
        response: { 201: ExternalDataSource, ...errorResponses },
      },
    },
    async (request, reply) => reply.code(201).send(await createSource(core, actorOf(request), request.body)),
  );

  app.get(
    '/sync/sources',
    {
      schema: {
        tags,
        summary: "The tenant's external data sources",
        security,
        querystring: PageQuery,
        response: { 200: PageOf(ExternalDataSource, 'ExternalDataSourcePage'), ...errorResponses },
      },
    },
    async (request) => {
      const { page, pageSize, offset } = pageWindow(request.query);
      const { items, total } = await listSources(core, actorOf(request), offset, pageSize);
      return { items, meta: pageMeta(page, pageSize, total) };
    },
  );

  app.get(
    '/sync/sources/:id',
    {
      schema: {
        tags,
        summary: 'An external data source (secrets masked)',
        security,
        params: IdParams,
        response: { 200: ExternalDataSource, ...errorResponses },
      },
    },
    async (request) => toSource(core, await ownSource(core, actorOf(request).tenantId, request.params.id)),
  );

  app.patch(
    '/sync/sources/:id',
    {
      schema: {
        tags,
        summary: 'Change an external data source (admin); its type stays',
        security,
        params: IdParams,
        body: UpdateSourceBody,
        response: { 200: ExternalDataSource, ...errorResponses },
      },
    },
    async (request) => updateSource(core, actorOf(request), request.params.id, request.body),
  );

  app.delete(
    '/sync/sources/:id',
    {
      schema: {
        tags,
        summary: 'Remove an external data source (admin); the package and its objects stay',
        security,
        params: IdParams,
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (request, reply) => {
      await deleteSource(core, actorOf(request), request.params.id);
      return reply.code(204).send(null);
    },
  );

  const WorkspaceView = Type.Object(
    { ...WorkspaceProfile.properties, cloud_name: Type.String(), updated_at: Type.String({ format: 'date-time' }) },
    { title: 'Workspace' },
  );
  app.put(
    '/sync/workspace',
    {
      schema: {
        tags,
        summary: "Set the tenant's workspace: the local and cloud folders performSync keeps equal (admin)",
        security,
        body: WorkspaceProfile,
        response: { 200: WorkspaceView, ...errorResponses },
      },
    },
    async (request) => putWorkspace(core, actorOf(request), request.body),
  );
  app.get(
    '/sync/workspace',
    { schema: { tags, summary: "The tenant's workspace profile", security, response: { 200: WorkspaceView, ...errorResponses } } },
    async (request) => getWorkspace(core, actorOf(request)),
  );

  app.post(
    '/sync/jobs',
    {
      schema: {
        tags,
        summary: 'Start a sync of an external data source into its package',
        description:
          'The answer is the new job (pending); it runs in the background. 409 while a sync of that source is pending or running.',
        security,
        body: CreateSyncJobRequest,
        response: { 200: PlatformJob, ...errorResponses },
      },
      // No body at all (the spec allows it) is the same as `{}`: the default source.
      preValidation: async (request) => {
        request.body ??= {};
      },
    },
    async (request) => view(await startSourceSync(core, actorOf(request), request.body.source)),
  );

  app.get(
    '/sync/jobs',
    {
      schema: {
        tags,
        summary: 'Source sync jobs, newest first',
        security,
        querystring: Type.Object({
          ...PageQuery.properties,
          status: Type.Optional(Type.String({ maxLength: 20, description: 'pending, running, succeeded, failed, cancelled' })),
          source: Type.Optional(Type.String({ maxLength: 255, description: "A source's name or id" })),
        }),
        response: { 200: PageOf(PlatformJob, 'SyncJobPage'), ...errorResponses },
      },
    },
    async (request) => {
      const { page, pageSize, offset } = pageWindow(request.query);
      const status = statusFilter(request.query.status);
      const { jobs, total } = await listSourceSyncJobs(core, actorOf(request), {
        status,
        source: request.query.source,
        offset,
        limit: pageSize,
      });
      return { items: jobs.map(view), meta: pageMeta(page, pageSize, total) };
    },
  );

  app.get(
    '/sync/jobs/:id',
    { schema: { tags, summary: 'A source sync job', security, params: IdParams, response: { 200: PlatformJob, ...errorResponses } } },
    async (request) => view(await sourceSyncJob(core, actorOf(request), request.params.id)),
  );
};
