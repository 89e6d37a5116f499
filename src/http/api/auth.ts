import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { AcceptInvitationRequest, AuthSession, LoginRequest, SelectTenantRequest, TenantMembership } from '../../accounts/models.ts';
import { acceptInvitation } from '../../accounts/invitations.ts';
import { describeSession, login, logout, switchTenant } from '../../accounts/sessions.ts';
import { listAccessibleTenants } from '../../accounts/tenants.ts';
import type { Core } from '../../jobs/core.ts';
import { actorOf, clearSessionCookie, setSessionCookie } from '../auth.ts';
import { errorResponses } from './envelope.ts';

const tags = ['Auth'];
const security = [{ bearer: [] }];
/** A member disabled in their current tenant still sees where they stand and may leave (switch, log out, accept an invitation elsewhere). */
const stillServed = { inactiveMembership: true };

export const authRoutes: FastifyPluginAsyncTypebox<{ core: Core }> = async (app, { core }) => {
  app.post(
    '/auth/login',
    {
      config: { auth: false },
      schema: {
        tags,
        summary: 'Log in with email and password',
        description:
          'Wrong email and wrong password answer the same 401. Repeated failures are throttled per account and per client address (429 with Retry-After).',
        body: LoginRequest,
        response: { 200: AuthSession, ...errorResponses },
      },
    },
    async (request, reply) => {
      const session = await login(core, request.body.email, request.body.password, request.ip);
      setSessionCookie(reply, core, session);
      return session;
    },
  );

  app.post(
    '/auth/logout',
    {
      config: stillServed,
      schema: {
        tags,
        summary: 'End the current session; its token stops working at once',
        security,
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (request, reply) => {
      await logout(core, actorOf(request));
      clearSessionCookie(reply, core);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/auth/session',
    { config: stillServed, schema: { tags, summary: 'The current session', security, response: { 200: AuthSession, ...errorResponses } } },
    async (request) => describeSession(core, actorOf(request)),
  );

  app.get(
    '/auth/tenants',
    {
      config: stillServed,
      schema: {
        tags,
        summary: 'Tenants the current user belongs to, with role and status',
        security,
        response: { 200: Type.Array(TenantMembership), ...errorResponses },
      },
    },
    async (request) => listAccessibleTenants(core, actorOf(request)),
  );

  app.put(
    '/auth/tenant',
    {
      config: stillServed,
      schema: {
        tags,
        summary: 'Switch the session to another tenant',
        description: '404 for a tenant the user is not an active member of.',
        security,
        body: SelectTenantRequest,
        response: { 200: AuthSession, ...errorResponses },
      },
    },
    async (request) => switchTenant(core, actorOf(request), request.body.tenant_id),
  );

  app.post(
    '/auth/invitations/accept',
    {
      config: { auth: 'optional', ...stillServed },
      schema: {
        tags,
        summary: 'Accept an invitation and log in to its tenant',
        description:
          'A new account sets its password here. An existing account gives its current password (throttled like login: 429 with Retry-After), or calls this with a session of its own; an API key never stands in for either.',
        body: AcceptInvitationRequest,
        response: { 200: AuthSession, ...errorResponses },
      },
    },
    async (request, reply) => {
      const session = await acceptInvitation(core, request.body, request.ip, request.actor ?? undefined);
      setSessionCookie(reply, core, session);
      return session;
    },
  );
};
