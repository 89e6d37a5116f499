import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Id } from '../../lib/schema.ts';
import { InviteUserRequest, TenantMember, UpdateMemberRequest, UserInvitationResult } from '../../accounts/models.ts';
import { inviteUser } from '../../accounts/invitations.ts';
import { listMembers, removeMember, updateMember } from '../../accounts/members.ts';
import type { Core } from '../../jobs/core.ts';
import { PageOf, PageQuery } from '../../lib/paging.ts';
import { actorOf } from '../auth.ts';
import { errorResponses } from './envelope.ts';

const tags = ['Users'];
const security = [{ bearer: [] }];
const UserParams = Type.Object({ id: Id });

export const userRoutes: FastifyPluginAsyncTypebox<{ core: Core }> = async (app, { core }) => {
  app.post(
    '/users/invitations',
    {
      schema: {
        tags,
        summary: 'Invite a user into the current tenant (admin or owner)',
        description: 'Inviting an active member is 409; granting a role above your own is 403.',
        security,
        body: InviteUserRequest,
        response: { 201: UserInvitationResult, ...errorResponses },
      },
    },
    async (request, reply) => reply.code(201).send(await inviteUser(core, actorOf(request), request.body)),
  );

  app.get(
    '/users',
    {
      schema: {
        tags,
        summary: 'Members of the current tenant',
        security,
        querystring: PageQuery,
        response: { 200: PageOf(TenantMember, 'TenantMemberPage'), ...errorResponses },
      },
    },
    async (request) => listMembers(core, actorOf(request), request.query),
  );

  app.patch(
    '/users/:id',
    {
      schema: {
        tags,
        summary: "Change a member's role or status (admin or owner)",
        description: 'The last owner cannot be demoted or disabled (409).',
        security,
        params: UserParams,
        body: UpdateMemberRequest,
        response: { 200: TenantMember, ...errorResponses },
      },
    },
    async (request) => updateMember(core, actorOf(request), request.params.id, request.body),
  );

  app.delete(
    '/users/:id',
    {
      schema: {
        tags,
        summary: 'Remove a member from the current tenant (admin or owner)',
        security,
        params: UserParams,
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (request, reply) => {
      await removeMember(core, actorOf(request), request.params.id);
      return reply.code(204).send(null);
    },
  );
};
