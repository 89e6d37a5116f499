import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Core } from '../../jobs/core.ts';
import { CreateUserSpaceBody, TestUserSpaceBody, UpdateUserSpaceBody, UserSpace } from '../../spaces/models.ts';
import { createSpace, getSpace, listSpaces, testSpace } from '../../spaces/spaces.ts';
import { deleteUserSpace, updateUserSpace } from '../../storage/spaceUse.ts';
import { exportPackage, importPackage } from '../../storage/transfer.ts';
import { Id, StorageName } from '../../lib/schema.ts';
import { Package } from '../../storage/models.ts';
import { actorOf } from '../auth.ts';
import { V1, v1, v1ErrorResponses } from './envelope.ts';

const tags = ['Storage: user spaces'];
const security = [{ bearer: [] }];
const strict = { additionalProperties: false } as const;
const SpacePath = Type.String({ maxLength: 1024, description: "Relative to the space's root (not its workingDir); empty: the root." });

export const userSpaceRoutes: FastifyPluginAsyncTypebox<{ core: Core }> = async (app, { core }) => {
  const one = { 200: V1(Type.Object({ userSpace: UserSpace })), ...v1ErrorResponses };

  app.post(
    '/userSpace/create',
    {
      schema: {
        tags,
        summary: 'Add a user space (admin): local directory or S3-compatible bucket',
        security,
        body: CreateUserSpaceBody,
        response: one,
      },
    },
    async (request) => v1({ userSpace: await createSpace(core, actorOf(request), request.body) }),
  );

  app.post(
    '/userSpace/update',
    {
      schema: {
        tags,
        summary: "Change a user space's name, credential, shard store or features (admin); bumps revision",
        security,
        body: UpdateUserSpaceBody,
        response: one,
      },
    },
    async (request) => v1({ userSpace: await updateUserSpace(core, actorOf(request), request.body) }),
  );

  app.post(
    '/userSpace/delete',
    {
      schema: {
        tags,
        summary: 'Remove a user space (admin); OK if absent, 409 while objects keep bytes there',
        security,
        body: Type.Object({ userSpaceID: Id, userID: Type.Optional(Id) }, strict),
        response: { 200: V1(Type.Null()), ...v1ErrorResponses },
      },
    },
    async (request) => {
      await deleteUserSpace(core, actorOf(request), request.body.userSpaceID);
      return v1(null);
    },
  );

  app.get(
    '/userSpace/get',
    { schema: { tags, summary: 'A user space (secrets masked)', security, querystring: Type.Object({ userSpaceID: Id }), response: one } },
    async (request) => v1({ userSpace: await getSpace(core, actorOf(request), request.query.userSpaceID) }),
  );

  app.get(
    '/userSpace/list',
    {
      schema: {
        tags,
        summary: "All of the tenant's user spaces, the default one included (secrets masked)",
        security,
        response: { 200: V1(Type.Object({ userSpaces: Type.Array(UserSpace) })), ...v1ErrorResponses },
      },
    },
    async (request) => v1({ userSpaces: await listSpaces(core, actorOf(request)) }),
  );

  app.post(
    '/userSpace/test',
    {
      schema: {
        tags,
        summary: "Check a configuration (admin): writes, reads back and deletes a probe under workingDir; the backend's reason otherwise",
        security,
        body: TestUserSpaceBody,
        response: { 200: V1(Type.Null()), ...v1ErrorResponses },
      },
    },
    async (request) => {
      await testSpace(core, actorOf(request), request.body);
      return v1(null);
    },
  );

  app.post(
    '/userSpace/createPackage',
    {
      schema: {
        tags,
        summary: 'Import a file or folder of a user space into a new package',
        security,
        body: Type.Object(
          {
            userID: Type.Optional(Id),
            userSpaceID: Id,
            path: SpacePath,
            bucketID: Id,
            name: StorageName,
            spaceAffinity: Type.Optional(
              Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'Space for the bytes; 0: the default.' }),
            ),
          },
          strict,
        ),
        response: { 200: V1(Type.Object({ package: Package })), ...v1ErrorResponses },
      },
    },
    async (request) => v1({ package: await importPackage(core, actorOf(request), request.body) }),
  );

  app.post(
    '/userSpace/downloadPackage',
    {
      schema: {
        tags,
        summary: "Write a package's objects under rootPath in a user space",
        security,
        body: Type.Object({ userID: Type.Optional(Id), userSpaceID: Id, packageID: Id, rootPath: SpacePath }, strict),
        response: { 200: V1(Type.Null()), ...v1ErrorResponses },
      },
    },
    async (request) => {
      await exportPackage(core, actorOf(request), request.body);
      return v1(null);
    },
  );
};
