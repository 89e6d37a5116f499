import { Type, type FastifyPluginAsyncTypebox, type TSchema } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Core } from '../../jobs/core.ts';
import { badRequest } from '../../lib/errors.ts';
import { StorageObject } from '../../storage/models.ts';
import { listByPath, MAX_KEYS, type ListPage } from '../../storage/listing.ts';
import { completeMultipartUpload, MAX_PART_INDEX, newMultipartUpload, uploadPart } from '../../storage/multipart.ts';
import {
  beginUpload,
  cloneObjects,
  deleteObjects,
  getPackageObjects,
  moveObjects,
  openObject,
  openObjectByPath,
  type OpenedObject,
  type Upload,
} from '../../storage/objects.ts';
import { Nullable, Id } from '../../lib/schema.ts';
import { schemaProblem } from '../../lib/validation.ts';
import { sendFileBody } from '../fileBody.ts';
import { formBoundary, FormReader } from '../formReader.ts';
import { actorOf } from '../auth.ts';
import type { Actor } from '../../accounts/actor.ts';
import { assertOwnUserId, V1, v1, V1Error, v1ErrorBody, v1ErrorResponses } from './envelope.ts';

const tags = ['Storage: objects'];
const security = [{ bearer: [] }];
const UploadInfo = Type.Object(
  { userID: Type.Optional(Id), packageID: Id, affinity: Type.Optional(Type.Integer({ minimum: 0 })) },
  { additionalProperties: false },
);
const PartInfo = Type.Object(
  { userID: Type.Optional(Id), objectID: Id, index: Type.Integer({ minimum: 0, maximum: MAX_PART_INDEX }) },
  { additionalProperties: false },
);
const MAX_FILES_PER_UPLOAD = 10_000;

/**
 * A listing's envelope as the route's response schema has it, written here because the objects come
 * as UTF-8 JSON already (`ListPage.objectsJson`); a Buffer body is sent as it is, without the
 * serializer, and is not encoded again by the socket's write.
 */
function listPageBody(page: ListPage): Buffer {
  const head = `{"code":"OK","message":"","data":{"nextContinuationToken":${JSON.stringify(page.nextContinuationToken)},"isTruncated":${page.isTruncated},"commonPrefixes":${JSON.stringify(page.commonPrefixes)},"objects":[`;
  return Buffer.concat([Buffer.from(head), page.objectsJson, Buffer.from(']}}')]);
}

/** The request's multipart/form-data body, part by part (the caller closes it with `return()`). */
function formOf(request: FastifyRequest, what: string): FormReader {
  const boundary = formBoundary(request.headers['content-type']);
  if (!boundary) throw badRequest(`send multipart/form-data with a boundary: ${what}`);
  return new FormReader(request.raw, boundary, { parts: MAX_FILES_PER_UPLOAD + 1, fieldSize: 64 * 1024 });
}

/** The body's length as its request declares it (0: not declared), which bounds what its files hold. */
const declaredLength = (request: FastifyRequest): number => Number(request.headers['content-length']) || 0;

/** The leading `info` field of a multipart request, parsed and checked against `schema`. */
async function readInfo(form: FormReader, schema: TSchema, actor: Actor): Promise<unknown> {
  const first = await form.next();
  if (first.done || first.value.kind !== 'field' || first.value.name !== 'info') {
    throw badRequest("the first part must be the field 'info' (JSON), before any file", 'info');
  }
  let info: unknown;
  try {
    info = JSON.parse(first.value.value);
  } catch {
    throw badRequest("'info' is not valid JSON", 'info');
  }
  const problem = schemaProblem(schema, info);
  if (problem) throw badRequest(`info ${problem}`, 'info');
  assertOwnUserId(actor, (info as { userID?: number }).userID);
  return info;
}

/** `Range: bytes=a-b | a- | -n` against an object of `size` bytes; undefined when unsatisfiable. */
function parseRange(header: string, size: number): { start: number; end: number } | undefined {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return undefined;
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return undefined;
  return { start, end };
}

const Offset = Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }));
const Length = Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }));
const downloadResponses = {
  200: Type.Any({ description: 'application/octet-stream' }),
  206: Type.Any({ description: 'application/octet-stream' }),
  ...v1ErrorResponses,
  416: V1Error,
};

/** Streams an object: `offset`/`length` → 200 with that slice; else a `Range` header → 206 (416 when unsatisfiable). */
async function sendObject(
  request: FastifyRequest,
  reply: FastifyReply,
  { object, size, read, openFile }: OpenedObject,
  offset?: number,
  length?: number,
) {
  let range: { start: number; end: number } | undefined;
  let status: 200 | 206 = 200;
  const rangeHeader = request.headers.range;
  if (offset !== undefined || length !== undefined) {
    const start = offset ?? 0;
    if (start > size) throw badRequest(`offset ${start} is beyond the object's end (${size} bytes)`, 'offset');
    const end = Math.min(size, length === undefined ? size : start + length) - 1;
    range = { start, end };
  } else if (rangeHeader !== undefined) {
    range = parseRange(rangeHeader, size);
    if (!range) {
      reply.header('content-range', `bytes */${size}`);
      return reply
        .code(416)
        .send(v1ErrorBody({ kind: 'bad_request', message: `range '${rangeHeader}' cannot be satisfied for ${size} bytes` }));
    }
    status = 206;
  }
  const bytes = range ? range.end - range.start + 1 : size;
  // Opened before any header is set, so a backend failure answers in the envelope.
  const file = bytes > 0 ? await openFile() : undefined;
  const content = bytes > 0 && !file ? await read(range) : undefined;
  if (status === 206 && range) reply.header('content-range', `bytes ${range.start}-${range.end}/${size}`);
  reply
    .code(status)
    .header('content-type', 'application/octet-stream')
    .header('content-length', String(bytes))
    .header('etag', `"${object.fileHash}"`)
    .header('accept-ranges', 'bytes');
  if (file) return sendFileBody(reply, file, range?.start ?? 0, bytes);
  return reply.send(content ?? '');
}

export const objectRoutes: FastifyPluginAsyncTypebox<{ core: Core }> = async (app, { core }) => {
  // Multipart bodies are left unread here: the upload routes stream them through a FormReader.
  app.addContentTypeParser('multipart/form-data', (_request, _payload, done) => done(null));

  app.post(
    '/object/upload',
    {
      schema: {
        tags,
        summary: 'Upload objects (multipart/form-data, streamed)',
        description:
          'multipart/form-data: first a field `info` = JSON `{userID?, packageID, affinity?}`, then one `files` part per object whose URL-encoded filename is the object path. All objects become visible together; an existing path is replaced atomically.',
        security,
        consumes: ['multipart/form-data'],
        response: { 200: V1(Type.Object({ uploadeds: Type.Array(StorageObject) })), ...v1ErrorResponses },
      },
    },
    async (request) => {
      const actor = actorOf(request);
      const form = formOf(request, 'an info field, then files parts');
      let upload: Upload | undefined;
      try {
        const { packageID, affinity } = (await readInfo(form, UploadInfo, actor)) as { packageID: number; affinity?: number };
        upload = await beginUpload(core, actor, packageID, affinity, declaredLength(request));
        for await (const part of form) {
          if (part.kind !== 'file' || part.name !== 'files')
            throw badRequest(`unexpected part '${part.name}'; only 'files' parts may follow 'info'`);
          let path: string;
          try {
            path = decodeURIComponent(part.filename);
          } catch {
            throw badRequest(`file name '${part.filename}' is not valid URL encoding`, 'files[].filename');
          }
          await upload.add(path, part.content);
        }
        return v1({ uploadeds: await upload.commit() });
      } finally {
        upload?.release();
        await form.return();
      }
    },
  );

  app.get(
    '/object/download',
    {
      schema: {
        tags,
        summary: "An object's bytes (whole, `offset`/`length`, or an HTTP Range)",
        security,
        querystring: Type.Object({ objectID: Id, offset: Offset, length: Length }),
        response: downloadResponses,
      },
    },
    async (request, reply) => {
      const { objectID, offset, length } = request.query;
      return sendObject(request, reply, await openObject(core, actorOf(request), objectID), offset, length);
    },
  );

  app.get(
    '/object/downloadByPath',
    {
      schema: {
        tags,
        summary: "An object's bytes by `path=<bucket>/<package>/<object path>` (whole, `offset`/`length`, or an HTTP Range)",
        security,
        querystring: Type.Object({ path: Type.String({ minLength: 1, maxLength: 2048 }), offset: Offset, length: Length }),
        response: downloadResponses,
      },
    },
    async (request, reply) => {
      const { path, offset, length } = request.query;
      return sendObject(request, reply, await openObjectByPath(core, actorOf(request), path), offset, length);
    },
  );

  app.get(
    '/object/listByPath',
    {
      schema: {
        tags,
        summary: 'Objects by exact path, or under a prefix (optionally folding directories into commonPrefixes), paginated',
        security,
        querystring: Type.Object({
          packageID: Id,
          path: Type.String({ default: '', maxLength: 4096 }),
          isPrefix: Type.Optional(Type.Boolean()),
          noRecursive: Type.Optional(Type.Boolean()),
          maxKeys: Type.Optional(Type.Integer({ minimum: 1, description: `At most ${MAX_KEYS} (larger values mean ${MAX_KEYS}).` })),
          continuationToken: Type.Optional(Type.String({ maxLength: 8192 })),
        }),
        response: {
          200: V1(
            Type.Object({
              nextContinuationToken: Type.String(),
              isTruncated: Type.Boolean(),
              commonPrefixes: Type.Array(Type.String()),
              objects: Type.Array(StorageObject),
            }),
          ),
          ...v1ErrorResponses,
        },
      },
    },
    // The body is JSON already (the type provider expects the object the schema describes).
    async (request, reply) =>
      reply.type('application/json; charset=utf-8').send(listPageBody(await listByPath(core, actorOf(request), request.query)) as never),
  );

  app.get(
    '/object/getPackageObjects',
    {
      schema: {
        tags,
        summary: 'All objects of a package, by path (at most YUNJI_PACKAGE_OBJECTS_LIMIT; a larger package: 400, use listByPath)',
        security,
        querystring: Type.Object({ packageID: Id }),
        response: { 200: V1(Type.Object({ objects: Type.Array(StorageObject) })), ...v1ErrorResponses },
      },
    },
    async (request) => v1({ objects: await getPackageObjects(core, actorOf(request), request.query.packageID) }),
  );

  app.post(
    '/object/newMultipartUpload',
    {
      schema: {
        tags,
        summary: 'Start a multipart upload: an empty object (redundancy multipartUpload) that listings show',
        security,
        body: Type.Object(
          { userID: Type.Optional(Id), packageID: Id, path: Type.String({ maxLength: 4096 }) },
          { additionalProperties: false },
        ),
        response: { 200: V1(Type.Object({ object: StorageObject })), ...v1ErrorResponses },
      },
    },
    async (request) => v1({ object: await newMultipartUpload(core, actorOf(request), request.body.packageID, request.body.path) }),
  );

  app.post(
    '/object/uploadPart',
    {
      schema: {
        tags,
        summary: 'Upload one part (multipart/form-data: `info` = {objectID, index}, then a `file` part); the same index replaces',
        description: 'multipart/form-data: first a field `info` = JSON `{objectID, index}`, then one `file` part with the bytes.',
        security,
        consumes: ['multipart/form-data'],
        response: { 200: V1(Type.Null()), ...v1ErrorResponses },
      },
    },
    async (request) => {
      const actor = actorOf(request);
      const form = formOf(request, 'an info field, then the file part');
      try {
        const info = (await readInfo(form, PartInfo, actor)) as { objectID: number; index: number };
        const next = await form.next();
        if (next.done || next.value.kind !== 'file') throw badRequest("a 'file' part must follow 'info'", 'file');
        await uploadPart(core, actor, info.objectID, info.index, next.value.content, declaredLength(request));
        const extra = await form.next();
        if (!extra.done) throw badRequest(`unexpected part '${extra.value.name}' after the file`);
        return v1(null);
      } finally {
        await form.return();
      }
    },
  );

  app.post(
    '/object/completeMultipartUpload',
    {
      schema: {
        tags,
        summary: 'Join the listed parts, in that order (repeats allowed), into the object; unlisted parts are dropped',
        security,
        body: Type.Object(
          {
            userID: Type.Optional(Id),
            objectID: Id,
            indexes: Type.Array(Type.Integer({ minimum: 0, maximum: MAX_PART_INDEX }), { minItems: 1, maxItems: 100_000 }),
          },
          { additionalProperties: false },
        ),
        response: { 200: V1(Type.Object({ object: StorageObject })), ...v1ErrorResponses },
      },
    },
    async (request) => v1({ object: await completeMultipartUpload(core, actorOf(request), request.body.objectID, request.body.indexes) }),
  );

  app.post(
    '/object/move',
    {
      schema: {
        tags,
        summary: 'Move objects to another package and/or path; each item succeeds or fails on its own',
        description:
          'A target path that is taken, an invalid path or an unknown object fails that item only. `successes` lists the ids moved.',
        security,
        body: Type.Object(
          {
            userID: Type.Optional(Id),
            movings: Type.Array(
              Type.Object({ objectID: Id, packageID: Id, path: Type.String({ maxLength: 4096 }) }, { additionalProperties: false }),
              { maxItems: 10_000 },
            ),
          },
          { additionalProperties: false },
        ),
        response: { 200: V1(Type.Object({ successes: Type.Array(Id) })), ...v1ErrorResponses },
      },
    },
    async (request) => v1({ successes: await moveObjects(core, actorOf(request), request.body.movings) }),
  );

  app.post(
    '/object/clone',
    {
      schema: {
        tags,
        summary: 'Copy objects to new paths (no bytes are copied); each item succeeds or fails on its own',
        description:
          '`objects` follows the request order, with null for an item that failed (taken path, invalid path, unknown object or package).',
        security,
        body: Type.Object(
          {
            userID: Type.Optional(Id),
            clonings: Type.Array(
              Type.Object({ objectID: Id, newPath: Type.String({ maxLength: 4096 }), newPackageID: Id }, { additionalProperties: false }),
              { maxItems: 10_000 },
            ),
          },
          { additionalProperties: false },
        ),
        response: { 200: V1(Type.Object({ objects: Type.Array(Nullable(StorageObject)) })), ...v1ErrorResponses },
      },
    },
    async (request) => v1({ objects: await cloneObjects(core, actorOf(request), request.body.clonings) }),
  );

  app.post(
    '/object/delete',
    {
      schema: {
        tags,
        summary: 'Delete objects (missing ones are OK)',
        security,
        body: Type.Object({ userID: Type.Optional(Id), objectIDs: Type.Array(Id, { maxItems: 10_000 }) }, { additionalProperties: false }),
        response: { 200: V1(Type.Null()), ...v1ErrorResponses },
      },
    },
    async (request) => {
      await deleteObjects(core, actorOf(request), request.body.objectIDs);
      return v1(null);
    },
  );
};
