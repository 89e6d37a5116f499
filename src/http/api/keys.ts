import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { createApiKey, listApiKeys, revokeApiKey } from '../../accounts/apiKeys.ts';
import { Id } from '../../lib/schema.ts';
import { ApiKey, CreateApiKeyRequest, CreatedApiKey } from '../../accounts/models.ts';
import type { Core } from '../../jobs/core.ts';
import { PageOf, PageQuery } from '../../lib/paging.ts';
import { actorOf } from '../auth.ts';
import { errorResponses } from './envelope.ts';

const tags = ['API keys'];
const security = [{ bearer: [] }];

export const keyRoutes: FastifyPluginAsyncTypebox<{ core: Core }> = async (app, { core }) => {
  app.post(
    '/keys',
    {
      schema: {
        tags,
        summary: 'Create an API key (shown only in this response)',
        description: 'The key acts in the current tenant with its role, never above its creator’s role.',
        security,
        body: CreateApiKeyRequest,
        response: { 201: CreatedApiKey, ...errorResponses },
      },
    },
    async (request, reply) => reply.code(201).send(await createApiKey(core, actorOf(request), request.body)),
  );

  app.get(
    '/keys',
    {
      schema: {
        tags,
        summary: 'API keys of the current tenant (admins: all; others: their own)',
        security,
        querystring: PageQuery,
        response: { 200: PageOf(ApiKey, 'ApiKeyPage'), ...errorResponses },
      },
    },
    async (request) => listApiKeys(core, actorOf(request), request.query),
  );

  app.delete(
    '/keys/:id',
    {
      schema: {
        tags,
        summary: 'Revoke an API key',
        security,
        params: Type.Object({ id: Id }),
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (request, reply) => {
      await revokeApiKey(core, actorOf(request), request.params.id);
      return reply.code(204).send(null);
    },
  );
};
