import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { CreateTenantRequest, Tenant } from '../../accounts/models.ts';
import { createTenant } from '../../accounts/tenants.ts';
import type { Core } from '../../core.ts';
import { actorOf } from '../auth.ts';
import { errorResponses } from './envelope.ts';

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
};
