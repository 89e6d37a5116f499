import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Core } from '../../jobs/core.ts';
import { badRequest } from '../../lib/errors.ts';
import {
  actorCancel,
  actorCreateTrigger,
  actorDeleteTrigger,
  actorDeliveries,
  actorJob,
  actorJobLogs,
  actorJobs,
  actorSubmit,
  actorTriggers,
} from '../../jobs/service.ts';
import { PlatformJob, platformJob, statusFilter } from '../jobViews.ts';
import { setTenantWebhook, tenantWebhook } from '../../jobs/webhooks.ts';
import { requireRole } from '../../accounts/actor.ts';
import { Id } from '../../lib/schema.ts';
import { pageMeta, PageOf, pageWindow } from '../../lib/paging.ts';
import { iso, isoOrNull } from '../../lib/time.ts';
import { actorOf } from '../auth.ts';
import { errorResponses } from './envelope.ts';

const tags = ['Jobs'];
const security = [{ bearer: [] }];
const JobIdParams = Type.Object({ id: Id });

const SubmitJobRequest = Type.Object(
  {
    action: Type.String({ minLength: 1, maxLength: 64 }),
    params: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    description: Type.Optional(Type.String({ maxLength: 1000 })),
    reference_id: Type.Optional(Type.String({ maxLength: 255 })),
    concurrency_key: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 255,
        description: 'At most one pending or running job of the tenant per key (409 otherwise).',
      }),
    ),
    start_at: Type.Optional(Type.String({ format: 'date-time', description: 'Run no earlier than this; default now.' })),
    notify_hook: Type.Optional(Type.String({ maxLength: 2048 })),
    state: Type.Optional(
      Type.String({ maxLength: 4096, description: "Returned as is in the job and its webhooks (the caller's own data)." }),
    ),
  },
  { additionalProperties: false, title: 'SubmitJobRequest' },
);

const Delivery = Type.Object(
  {
    id: Type.Integer(),
    sequence: Type.Integer(),
    event: Type.String(),
    url: Type.String(),
    status: Type.String({ description: 'pending, delivered or failed (given up after 8 attempts)' }),
    attempts: Type.Integer(),
    next_attempt_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    last_status_code: Type.Union([Type.Integer(), Type.Null()]),
    last_error: Type.Union([Type.String(), Type.Null()]),
    created_at: Type.String({ format: 'date-time' }),
    delivered_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  },
  { title: 'WebhookDelivery' },
);

const LogLine = Type.Object(
  { line: Type.Integer(), level: Type.String(), message: Type.String(), at: Type.String({ format: 'date-time' }) },
  { title: 'JobLogLine' },
);

const Trigger = Type.Object(
  {
    id: Type.Integer(),
    action: Type.String(),
    params: Type.Unknown(),
    description: Type.String(),
    interval: Type.Integer({ description: 'Seconds between runs.' }),
    nextRunAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    enabled: Type.Boolean(),
    createdAt: Type.String({ format: 'date-time' }),
  },
  { title: 'JobTrigger' },
);

const Webhook = Type.Object(
  {
    url: Type.Union([Type.String(), Type.Null()], { description: 'Where jobs without a notify hook of their own post their events.' }),
    secret: Type.String({ description: 'Signs every webhook of the tenant: `X-Yunji-Signature: sha256=<hex HMAC-SHA256 of the body>`.' }),
  },
  { title: 'TenantWebhook' },
);

export const jobRoutes: FastifyPluginAsyncTypebox<{ core: Core }> = async (app, { core }) => {
  const view = (job: Parameters<typeof platformJob>[0]) => platformJob(job, core.jobs.actions);

  app.get(
    '/jobs',
    {
      schema: {
        tags,
        summary: "The current tenant's jobs, newest first",
        security,
        querystring: Type.Object({
          page: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, default: 1 })),
          page_size: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
          status: Type.Optional(
            Type.String({ maxLength: 20, description: 'pending (or scheduled), running, succeeded (or completed), failed, cancelled' }),
          ),
          action: Type.Optional(Type.String({ maxLength: 64 })),
        }),
        response: { 200: PageOf(PlatformJob, 'JobPage'), ...errorResponses },
      },
    },
    async (request) => {
      const { page, pageSize, offset } = pageWindow(request.query);
      const status = statusFilter(request.query.status);
      const { jobs, total } = await actorJobs(core, actorOf(request), { status, action: request.query.action, offset, limit: pageSize });
      return { items: jobs.map(view), meta: pageMeta(page, pageSize, total) };
    },
  );

  app.post(
    '/jobs',
    {
      schema: {
        tags,
        summary: 'Submit a job',
        description: 'Runs `action` with `params` (each action validates its own). Members and above.',
        security,
        body: SubmitJobRequest,
        response: { 201: PlatformJob, ...errorResponses },
      },
    },
    async (request, reply) => {
      const b = request.body;
      let startAt: number | undefined;
      if (b.start_at !== undefined) {
        startAt = Date.parse(b.start_at);
        if (!Number.isFinite(startAt)) throw badRequest('start_at is not a date-time', 'start_at');
      }
      const job = await actorSubmit(core, actorOf(request), {
        action: b.action,
        params: b.params,
        description: b.description,
        referenceId: b.reference_id,
        concurrencyKey: b.concurrency_key,
        startAt,
        notifyHook: b.notify_hook,
        state: b.state,
      });
      return reply.code(201).send(view(job));
    },
  );

  app.get(
    '/jobs/:id',
    { schema: { tags, summary: 'One job', security, params: JobIdParams, response: { 200: PlatformJob, ...errorResponses } } },
    async (request) => view(await actorJob(core, actorOf(request), request.params.id)),
  );

  app.post(
    '/jobs/:id/cancel',
    {
      schema: {
        tags,
        summary: 'Cancel a pending or running job',
        description:
          'A pending job is cancelled at once; a running one is stopped wherever it runs (the answer waits up to 3 s for it). A finished job: 409.',
        security,
        params: JobIdParams,
        response: { 200: PlatformJob, ...errorResponses },
      },
    },
    async (request) => view(await actorCancel(core, actorOf(request), request.params.id)),
  );

  app.get(
    '/jobs/:id/logs',
    {
      schema: {
        tags,
        summary: "A job's log lines",
        security,
        params: JobIdParams,
        querystring: Type.Object({
          after: Type.Optional(Type.Integer({ minimum: 0, default: 0 })),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 1000 })),
        }),
        response: { 200: Type.Object({ items: Type.Array(LogLine) }), ...errorResponses },
      },
    },
    async (request) => {
      const lines = await actorJobLogs(core, actorOf(request), request.params.id, request.query.after ?? 0, request.query.limit ?? 1000);
      return { items: lines.map((l) => ({ ...l, at: iso(l.at) })) };
    },
  );

  app.get(
    '/jobs/:id/deliveries',
    {
      schema: {
        tags,
        summary: "A job's webhook deliveries and their attempts",
        security,
        params: JobIdParams,
        response: { 200: Type.Object({ items: Type.Array(Delivery) }), ...errorResponses },
      },
    },
    async (request) => {
      const rows = await actorDeliveries(core, actorOf(request), request.params.id);
      return {
        items: rows.map((d) => ({
          ...d,
          next_attempt_at: d.status === 'pending' ? iso(d.next_attempt_at) : null,
          created_at: iso(d.created_at),
          delivered_at: isoOrNull(d.delivered_at),
        })),
      };
    },
  );

  app.get(
    '/jobs/triggers',
    {
      schema: {
        tags,
        summary: 'Interval triggers of the current tenant',
        security,
        response: { 200: Type.Object({ items: Type.Array(Trigger) }), ...errorResponses },
      },
    },
    async (request) => ({ items: await actorTriggers(core, actorOf(request)) }),
  );

  app.post(
    '/jobs/triggers',
    {
      schema: {
        tags,
        summary: 'Run an action every `interval` seconds (admins)',
        description: 'One job per tick, whichever process takes it; a tick whose previous job is still running is skipped.',
        security,
        body: Type.Object(
          {
            action: Type.String({ minLength: 1, maxLength: 64 }),
            params: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
            interval: Type.Integer({ minimum: 1, maximum: 366 * 24 * 3600 }),
            run_now: Type.Optional(Type.Boolean({ description: 'Also run at once (default false: first run after one interval).' })),
            notify_hook: Type.Optional(Type.String({ maxLength: 2048 })),
          },
          { additionalProperties: false },
        ),
        response: { 201: Trigger, ...errorResponses },
      },
    },
    async (request, reply) => {
      const b = request.body;
      const trigger = await actorCreateTrigger(core, actorOf(request), {
        action: b.action,
        params: b.params,
        interval: b.interval,
        runNow: b.run_now,
        notifyHook: b.notify_hook,
      });
      return reply.code(201).send(trigger);
    },
  );

  app.delete(
    '/jobs/triggers/:id',
    {
      schema: {
        tags,
        summary: 'Delete an interval trigger (its jobs stay)',
        security,
        params: JobIdParams,
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (request, reply) => {
      await actorDeleteTrigger(core, actorOf(request), request.params.id);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/webhook',
    {
      schema: {
        tags,
        summary: "The tenant's default webhook and signing secret (admins)",
        security,
        response: { 200: Webhook, ...errorResponses },
      },
    },
    async (request) => {
      const actor = actorOf(request);
      requireRole(actor, 'admin');
      return tenantWebhook(core, actor.tenantId);
    },
  );

  app.put(
    '/webhook',
    {
      schema: {
        tags,
        summary: "Set the tenant's default webhook (admins)",
        security,
        body: Type.Object(
          { url: Type.Union([Type.String({ maxLength: 2048 }), Type.Null()]), rotate_secret: Type.Optional(Type.Boolean()) },
          { additionalProperties: false },
        ),
        response: { 200: Webhook, ...errorResponses },
      },
    },
    async (request) => {
      const actor = actorOf(request);
      requireRole(actor, 'admin');
      return setTenantWebhook(core, actor.tenantId, request.body.url, request.body.rotate_secret ?? false);
    },
  );
};
