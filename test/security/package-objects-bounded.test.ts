import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { client, login, newTenantClient, startServer, type ApiResponse, type RunningServer } from '../helpers/server.ts';
import type { Api } from '../helpers/sync.ts';

const kinds = await databaseKinds();
const MOST = 5;

/**
 * `GET /v1/object/getPackageObjects` cannot be made to build an answer of every object of a huge
 * package: it answers at most YUNJI_PACKAGE_OBJECTS_LIMIT objects (here 5) and refuses a larger
 * package with a 400 pointing at the paged listing, `/v1/object/listByPath`, which lists it all.
 */
describe.each(kinds)('getPackageObjects bounded on %s', (kind) => {
  let server: RunningServer;
  let token: string;
  let owner: Api;
  let stranger: Api;
  let small: number;
  let big: number;

  const upload = async (packageID: number, names: string[]) => {
    const form = new FormData();
    form.append('info', JSON.stringify({ packageID }));
    for (const name of names) form.append('files', new Blob([`content of ${name}`]), encodeURIComponent(name));
    const res = await fetch(`${server.url}/v1/object/upload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: form,
    });
    const body = (await res.json()) as any;
    expect(body.code, JSON.stringify(body)).toBe('OK');
  };
  const expectV1Error = (res: ApiResponse, status: number, code: string, message?: RegExp) => {
    expect(res.status, res.text).toBe(status);
    expect(res.body, res.text).toEqual({ code, message: message ? expect.stringMatching(message) : expect.any(String), data: null });
  };

  beforeAll(async () => {
    server = await startServer(kind, { env: { YUNJI_PACKAGE_OBJECTS_LIMIT: String(MOST) } });
    token = await login(server.url);
    owner = client(server.url, token);
    stranger = await newTenantClient(server.url, 'Stranger');
    const bucketID = (await owner.post('/v1/bucket/create', { name: 'b' })).body.data.bucket.bucketID;
    small = (await owner.post('/v1/package/create', { bucketID, name: 'small' })).body.data.package.packageID;
    big = (await owner.post('/v1/package/create', { bucketID, name: 'big' })).body.data.package.packageID;
    await upload(small, ['1', '2', '3', '4', '5']);
    await upload(big, ['a', 'b', 'c', 'd', 'e', 'f/g']);
  });
  afterAll(async () => {
    await server?.dispose();
  });

  it('answers a package of up to the limit whole, and refuses a larger one pointing at listByPath', async () => {
    const whole = await owner.get(`/v1/object/getPackageObjects?packageID=${small}`);
    expect(whole.body?.code, whole.text).toBe('OK');
    expect(whole.body.data.objects.map((o: any) => o.path)).toEqual(['1', '2', '3', '4', '5']);

    expectV1Error(
      await owner.get(`/v1/object/getPackageObjects?packageID=${big}`),
      400,
      'BadArgument',
      new RegExp(`more than ${MOST} objects.*/v1/object/listByPath`),
    );

    // The paged listing it points at lists every object.
    const paths: string[] = [];
    let token = '';
    for (let page = 0; page < 10; page++) {
      const res = await owner.get(
        `/v1/object/listByPath?packageID=${big}&isPrefix=true&maxKeys=4&continuationToken=${encodeURIComponent(token)}`,
      );
      expect(res.body?.code, res.text).toBe('OK');
      paths.push(...res.body.data.objects.map((o: any) => o.path));
      if (!res.body.data.isTruncated) break;
      token = res.body.data.nextContinuationToken;
    }
    expect(paths).toEqual(['a', 'b', 'c', 'd', 'e', 'f/g']);
  });

  it('answers malformed and other tenants’ package ids in the storage envelope', async () => {
    for (const q of [
      '',
      'packageID=',
      'packageID=abc',
      'packageID=-1',
      'packageID=1.5',
      'packageID=99999999999999999999',
      `packageID=${big}%00`,
    ]) {
      const res = await owner.get(`/v1/object/getPackageObjects?${q}`);
      expect(res.status, `${q}: ${res.text}`).toBe(400);
      expect(res.body?.code, q).toBe('BadArgument');
    }
    expectV1Error(await owner.get('/v1/object/getPackageObjects?packageID=99999999'), 404, 'NotFound');
    // Another tenant sees neither the package nor its size.
    expectV1Error(await stranger.get(`/v1/object/getPackageObjects?packageID=${big}`), 404, 'NotFound');
    expectV1Error(await stranger.get(`/v1/object/getPackageObjects?packageID=${small}`), 404, 'NotFound');
  });
});
