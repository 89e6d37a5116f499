import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Core } from '../../jobs/core.ts';
import { createBucket, deleteBucket, getBucketByName, listBuckets } from '../../storage/buckets.ts';
import { Id, StorageName } from '../../lib/schema.ts';
import { Bucket } from '../../storage/models.ts';
import { actorOf } from '../auth.ts';
import { V1, v1, v1ErrorResponses } from './envelope.ts';

const tags = ['Storage: buckets'];
const security = [{ bearer: [] }];
const strict = { additionalProperties: false } as const;

export const bucketRoutes: FastifyPluginAsyncTypebox<{ core: Core }> = async (app, { core }) => {
  app.post(
    '/bucket/create',
    {
      schema: {
        tags,
        summary: 'Create a bucket (name unique in the tenant)',
        security,
        body: Type.Object({ userID: Type.Optional(Id), name: StorageName }, strict),
        response: { 200: V1(Type.Object({ bucket: Bucket })), ...v1ErrorResponses },
      },
    },
    async (request) => v1({ bucket: await createBucket(core, actorOf(request), request.body.name) }),
  );

  app.get(
    '/bucket/getByName',
    {
      schema: {
        tags,
        summary: 'A bucket by name',
        security,
        querystring: Type.Object({ name: StorageName }),
        response: { 200: V1(Type.Object({ bucket: Bucket })), ...v1ErrorResponses },
      },
    },
    async (request) => v1({ bucket: await getBucketByName(core, actorOf(request), request.query.name) }),
  );

  app.get(
    '/bucket/listAll',
    {
      schema: {
        tags,
        summary: "All of the tenant's buckets",
        security,
        response: { 200: V1(Type.Object({ buckets: Type.Array(Bucket) })), ...v1ErrorResponses },
      },
    },
    async (request) => v1({ buckets: await listBuckets(core, actorOf(request)) }),
  );

  app.post(
    '/bucket/delete',
    {
      schema: {
        tags,
        summary: 'Delete a bucket and everything in it',
        security,
        body: Type.Object({ userID: Type.Optional(Id), bucketID: Id }, strict),
        response: { 200: V1(Type.Null()), ...v1ErrorResponses },
      },
    },
    async (request) => {
      await deleteBucket(core, actorOf(request), request.body.bucketID);
      return v1(null);
    },
  );
};
