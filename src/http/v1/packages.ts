import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Core } from '../../jobs/core.ts';
import { Id, StorageName } from '../../lib/schema.ts';
import { Package } from '../../storage/models.ts';
import { createPackage, deletePackage, getPackageByFullName, listBucketPackages } from '../../storage/packages.ts';
import { actorOf } from '../auth.ts';
import { V1, v1, v1ErrorResponses } from './envelope.ts';

const tags = ['Storage: packages'];
const security = [{ bearer: [] }];
const strict = { additionalProperties: false } as const;

export const packageRoutes: FastifyPluginAsyncTypebox<{ core: Core }> = async (app, { core }) => {
  app.post(
    '/package/create',
    {
      schema: {
        tags,
        summary: 'Create a package in a bucket (name unique in the bucket)',
        security,
        body: Type.Object({ userID: Type.Optional(Id), bucketID: Id, name: StorageName }, strict),
        response: { 200: V1(Type.Object({ package: Package })), ...v1ErrorResponses },
      },
    },
    async (request) => v1({ package: await createPackage(core, actorOf(request), request.body.bucketID, request.body.name) }),
  );

  app.get(
    '/package/getByFullName',
    {
      schema: {
        tags,
        summary: 'A package by bucket name and package name',
        security,
        querystring: Type.Object({ bucketName: StorageName, packageName: StorageName }),
        response: { 200: V1(Type.Object({ package: Package })), ...v1ErrorResponses },
      },
    },
    async (request) =>
      v1({ package: await getPackageByFullName(core, actorOf(request), request.query.bucketName, request.query.packageName) }),
  );

  app.get(
    '/package/listBucketPackages',
    {
      schema: {
        tags,
        summary: 'All packages of a bucket',
        security,
        querystring: Type.Object({ bucketID: Id }),
        response: { 200: V1(Type.Object({ packages: Type.Array(Package) })), ...v1ErrorResponses },
      },
    },
    async (request) => v1({ packages: await listBucketPackages(core, actorOf(request), request.query.bucketID) }),
  );

  app.post(
    '/package/delete',
    {
      schema: {
        tags,
        summary: 'Delete a package and everything in it',
        security,
        body: Type.Object({ userID: Type.Optional(Id), packageID: Id }, strict),
        response: { 200: V1(Type.Null()), ...v1ErrorResponses },
      },
    },
    async (request) => {
      await deletePackage(core, actorOf(request), request.body.packageID);
      return v1(null);
    },
  );
};
