import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { databaseKinds } from '../helpers/databases.ts';
import { call, earlyResponse, login, nativeOffRun, type RunningServer, startServer } from '../helpers/server.ts';

const kinds = await databaseKinds();

/** Every `/v1` route that takes a JSON body: a body it would accept, and which of its fields are required. */
const bodyRoutes: { path: string; valid: Record<string, unknown>; required: string[] }[] = [
  { path: '/v1/bucket/create', valid: { userID: 1, name: 'b' }, required: ['name'] },
  { path: '/v1/bucket/delete', valid: { userID: 1, bucketID: 1 }, required: ['bucketID'] },
  { path: '/v1/package/create', valid: { userID: 1, bucketID: 1, name: 'p' }, required: ['bucketID', 'name'] },
  { path: '/v1/package/delete', valid: { userID: 1, packageID: 1 }, required: ['packageID'] },
  { path: '/v1/object/newMultipartUpload', valid: { userID: 1, packageID: 1, path: 'a' }, required: ['packageID', 'path'] },
  { path: '/v1/object/completeMultipartUpload', valid: { userID: 1, objectID: 1, indexes: [0] }, required: ['objectID', 'indexes'] },
  { path: '/v1/object/move', valid: { userID: 1, movings: [{ objectID: 1, packageID: 1, path: 'a' }] }, required: ['movings'] },
  { path: '/v1/object/clone', valid: { userID: 1, clonings: [{ objectID: 1, newPath: 'a', newPackageID: 1 }] }, required: ['clonings'] },
  { path: '/v1/object/delete', valid: { userID: 1, objectIDs: [1] }, required: ['objectIDs'] },
  {
    path: '/v1/userSpace/create',
    valid: { userID: 1, name: 's', storage: { type: 'local', root: '/x' }, shardStore: { maxSize: 1 }, workingDir: '' },
    required: ['name', 'storage'],
  },
  { path: '/v1/userSpace/update', valid: { userID: 1, userSpaceID: 1, name: 's' }, required: ['userSpaceID'] },
  { path: '/v1/userSpace/delete', valid: { userID: 1, userSpaceID: 1 }, required: ['userSpaceID'] },
  { path: '/v1/userSpace/test', valid: { userID: 1, storage: { type: 'local', root: '/x' }, workingDir: '' }, required: ['storage'] },
  {
    path: '/v1/userSpace/createPackage',
    valid: { userID: 1, userSpaceID: 1, path: '', bucketID: 1, name: 'p', spaceAffinity: 0 },
    required: ['userSpaceID', 'path', 'bucketID', 'name'],
  },
  {
    path: '/v1/userSpace/downloadPackage',
    valid: { userID: 1, userSpaceID: 1, packageID: 1, rootPath: '' },
    required: ['userSpaceID', 'packageID', 'rootPath'],
  },
];

describe.each(kinds)('hostile input to /v1 on %s', (kind) => {
  let server: RunningServer;
  let token: string;
  beforeAll(async () => {
    server = await startServer(kind);
    token = await login(server.url);
  });
  afterAll(async () => {
    // Whatever was thrown at it, the process is still up and answering.
    expect((await call(server.url, 'GET', '/healthz')).status).toBe(200);
    await server?.dispose();
  });

  const send = (path: string, raw: string, contentType = 'application/json') =>
    call(server.url, 'POST', path, { token, raw, headers: { 'content-type': contentType } });
  const expectBadArgument = (res: { status: number; body: any; text?: string }, what: string, pattern?: RegExp) => {
    expect([res.status, res.body.code], `${what}: ${res.text ?? JSON.stringify(res.body)}`).toEqual([400, 'BadArgument']);
    expect(res.body.data, what).toBeNull();
    if (pattern) expect(res.body.message, what).toMatch(pattern);
  };

  it.each(bodyRoutes)('$path refuses malformed, mistyped and incomplete bodies in the envelope', async (r) => {
    for (const raw of ['{"name": ', '[1, 2]', '"just a string"', 'null', '']) expectBadArgument(await send(r.path, raw), `raw ${raw}`);
    expectBadArgument(await send(r.path, JSON.stringify({ ...r.valid, surprise: 1 })), 'unknown field', /unknown field 'surprise'/);
    for (const field of Object.keys(r.valid)) {
      if (r.required.includes(field)) {
        const { [field]: _, ...rest } = r.valid;
        expectBadArgument(await send(r.path, JSON.stringify(rest)), `missing ${field}`, new RegExp(field));
      }
      const wrong = typeof r.valid[field] === 'string' ? 12345 : typeof r.valid[field] === 'number' ? String(r.valid[field]) : 'text';
      expectBadArgument(await send(r.path, JSON.stringify({ ...r.valid, [field]: wrong })), `${field} mistyped`, new RegExp(field));
      if (typeof r.valid[field] !== 'object')
        expectBadArgument(
          await send(r.path, JSON.stringify({ ...r.valid, [field]: { nested: true } })),
          `${field} nested`,
          new RegExp(field),
        );
      if (typeof r.valid[field] === 'number') {
        for (const n of [-1, 1.5, 2 ** 64])
          expectBadArgument(await send(r.path, JSON.stringify({ ...r.valid, [field]: n })), `${field} = ${n}`, new RegExp(field));
      }
    }
    const wrongType = await send(r.path, JSON.stringify(r.valid), 'text/plain');
    expect([wrongType.status, wrongType.body.code]).toEqual([415, 'UnsupportedMediaType']);
  });

  it.each(bodyRoutes)('$path answers a 10 MB body with 413 TooLarge and stays up', async (r) => {
    const res = await earlyResponse(server.url, 'POST', r.path, 10 * 1024 * 1024, token);
    expect(res.status).toBe(413);
    expect(JSON.parse(res.text)).toMatchObject({ code: 'TooLarge', data: null });
    expect((await call(server.url, 'GET', '/healthz')).status).toBe(200);
  });

  it.skipIf(nativeOffRun)(
    'uploads refuse hostile multipart bodies in the envelope, and nothing of them becomes visible',
    async () => {
      const bucketID = (await call(server.url, 'POST', '/v1/bucket/create', { token, body: { name: 'hostile-forms' } })).body.data.bucket
        .bucketID;
      const packageID = (await call(server.url, 'POST', '/v1/package/create', { token, body: { bucketID, name: 'p' } })).body.data.package
        .packageID;
      const b = 'hostile-boundary';
      const info = `--${b}\r\nContent-Disposition: form-data; name="info"\r\n\r\n${JSON.stringify({ packageID })}\r\n`;
      const filePart = (name: string, content = 'x') =>
        `--${b}\r\nContent-Disposition: form-data; name="files"; filename="${name}"\r\n\r\n${content}\r\n`;
      const end = `--${b}--\r\n`;
      const post = (raw: string | Buffer, contentType = `multipart/form-data; boundary=${b}`, path = '/v1/object/upload') =>
        call(server.url, 'POST', path, { token, raw, headers: { 'content-type': contentType } });
      const expectRefused = (res: { status: number; body: any }, status: number, code: string, pattern: RegExp, what: string) => {
        expect([res.status, res.body.code], `${what}: ${JSON.stringify(res.body)}`).toEqual([status, code]);
        expect(res.body.data, what).toBeNull();
        expect(res.body.message, what).toMatch(pattern);
      };

      const manyParts = info + Array.from({ length: 100_000 }, (_, i) => filePart(`m${i}`)).join('') + end;
      expectRefused(await post(manyParts), 413, 'TooLarge', /more than 10001 parts/, '100,000 parts');
      expectRefused(await post(info + filePart('a')), 400, 'BadArgument', /closing boundary/, 'no closing boundary');
      expectRefused(
        await post(`${info}--${b}\r\nContent-Type: text/plain\r\n\r\nx\r\n${end}`),
        400,
        'BadArgument',
        /Content-Disposition/,
        'no disposition',
      );
      expectRefused(await post(info + filePart('a') + end, 'multipart/form-data'), 400, 'BadArgument', /boundary/, 'no boundary');
      expectRefused(
        await post(`${info}--${b}\r\nContent-Disposition: form-data; name="files"; filename="${'h'.repeat(70 * 1024)}"\r\n\r\nx\r\n${end}`),
        413,
        'TooLarge',
        /headers are larger/,
        '70 KB headers',
      );
      expectRefused(await post(filePart('a') + info + end), 400, 'BadArgument', /first part must be the field 'info'/, 'file before info');
      expectRefused(
        await post(`--${b}\r\nContent-Disposition: form-data; name="info"\r\n\r\n{not json\r\n${end}`),
        400,
        'BadArgument',
        /not valid JSON/,
        'info not JSON',
      );
      expectRefused(
        await post(`--${b}\r\nContent-Disposition: form-data; name="info"\r\n\r\n${' '.repeat(65 * 1024)}\r\n${end}`),
        413,
        'TooLarge',
        /larger than 65536 bytes/,
        'info too large',
      );
      expectRefused(await post(`${info}--${b}garbage\r\n\r\nx\r\n${end}`), 400, 'BadArgument', /malformed/, 'garbage after a boundary');
      expectRefused(await post(info + filePart('ok') + filePart('%E0%A4%A') + end), 400, 'BadArgument', /URL encoding/, 'bad URL encoding');
      expectRefused(
        await post(`${info}--${b}\r\nContent-Disposition: form-data; name="extra"\r\n\r\nv\r\n${end}`),
        400,
        'BadArgument',
        /unexpected part 'extra'/,
        'a second field',
      );
      const objectID = (await call(server.url, 'POST', '/v1/object/newMultipartUpload', { token, body: { packageID, path: 'mp' } })).body
        .data.object.objectID;
      const partInfo = `--${b}\r\nContent-Disposition: form-data; name="info"\r\n\r\n${JSON.stringify({ objectID, index: 0 })}\r\n`;
      expectRefused(
        await post(partInfo + end, undefined, '/v1/object/uploadPart'),
        400,
        'BadArgument',
        /'file' part must follow/,
        'part without file',
      );
      expectRefused(
        await post(partInfo + filePart('p'), undefined, '/v1/object/uploadPart'),
        400,
        'BadArgument',
        /closing boundary/,
        'part without closing boundary',
      );

      // A client that breaks off in the middle of a file.
      const { hostname, port } = new URL(server.url);
      await new Promise<void>((resolve) => {
        const socket = connect(Number(port), hostname, () => {
          const head = `${info}--${b}\r\nContent-Disposition: form-data; name="files"; filename="cut"\r\n\r\n`;
          socket.write(
            `POST /v1/object/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: multipart/form-data; boundary=${b}\r\nContent-Length: ${head.length + 1_000_000}\r\n\r\n${head}${'c'.repeat(300_000)}`,
            () => setTimeout(() => (socket.destroy(), resolve()), 200),
          );
        });
        socket.on('error', () => resolve());
      });
      const listed = await call(server.url, 'GET', `/v1/object/getPackageObjects?packageID=${packageID}`, { token });
      expect(listed.body.data.objects.map((o: { path: string }) => o.path)).toEqual(['mp']);
      // 10,001 parts are read and stored before the refusal: room for a loaded machine.
    },
    180_000,
  );

  it('refuses query ids that are not positive integers, and oversized names', async () => {
    for (const q of ['userSpaceID=abc', 'userSpaceID=-1', 'userSpaceID=1.5', 'userSpaceID=99999999999999999999', 'userSpaceID=', '']) {
      const res = await call(server.url, 'GET', `/v1/userSpace/get?${q}`, { token });
      expect([res.status, res.body.code], q).toEqual([400, 'BadArgument']);
    }
    const long = await call(server.url, 'POST', '/v1/userSpace/create', {
      token,
      body: { name: 'n'.repeat(5000), storage: { type: 'local', root: '/x' } },
    });
    expect([long.status, long.body.code]).toEqual([400, 'BadArgument']);
    const hugeRoot = await call(server.url, 'POST', '/v1/userSpace/create', {
      token,
      body: { name: 'n', storage: { type: 'local', root: `/${'r'.repeat(10_000)}` } },
    });
    expect([hugeRoot.status, hugeRoot.body.code]).toEqual([400, 'BadArgument']);
    const manyFeatures = await call(server.url, 'POST', '/v1/userSpace/create', {
      token,
      body: { name: 'n', storage: { type: 'local', root: '/x' }, features: Array.from({ length: 100 }, () => ({ type: 'x' })) },
    });
    expect([manyFeatures.status, manyFeatures.body.code]).toEqual([400, 'BadArgument']);
  });
});
