import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { CreateTenantRequest, Tenant } from '../../accounts/models.ts';
import { createTenant } from '../../accounts/tenants.ts';
import type { Core } from '../../jobs/core.ts';
import { currentTenantUsage } from '../../storage/quota.ts';
import { actorOf } from '../auth.ts';
import { errorResponses } from './envelope.ts';

const TenantUsage = Type.Object(
  {
    used_bytes: Type.Integer({
      description:
        "What the byte quota holds: bytes of the tenant's objects, each in full, of its unfinished uploads' parts, and local_bytes.",
    }),
    local_bytes: Type.Integer({
      description:
        "The part of used_bytes that is files Yunji wrote into the tenant's local spaces (exports, syncs), outside their .yunji folders.",
    }),
    used_objects: Type.Integer({ description: 'Objects, unfinished multipart uploads included.' }),
    max_bytes: Type.Integer({ description: 'The quota in bytes (0: none).' }),
    max_objects: Type.Integer({ description: 'The quota in objects (0: none).' }),
  },
  { title: 'TenantUsage' },
);

export const tenantRoutes: FastifyPluginAsyncTypebox<{ core: Core }> = async (app, { core }) => {
  app.post(
    '/tenants',
    {
      schema: {
        tags: ['Tenants'],
        summary: 'Create a tenant; its creator becomes owner',
        security: [{ bearer: [] }],
        body: CreateTenantRequest,
        response: { 201: Tenant, ...errorResponses },
      },
    },
    async (request, reply) => reply.code(201).send(await createTenant(core, actorOf(request), request.body.name)),
  );

  app.get(
    '/tenants/current/usage',
    {
      schema: {
        tags: ['Tenants'],
        summary: "The current tenant's storage usage and quota (507 answers uploads past it)",
        security: [{ bearer: [] }],
        response: { 200: TenantUsage, ...errorResponses },
      },
    },
    async (request) => currentTenantUsage(core, actorOf(request)),
  );
};
