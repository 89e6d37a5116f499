import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { client, login, startServer, type RunningServer } from '../helpers/server.ts';

const kinds = await databaseKinds();

/** listByPath over 5,000 objects: exact, prefix, directory-style, pagination, byte order. */
describe.each(kinds)('/v1/object/listByPath on %s', (kind) => {
  let server: RunningServer;
  let admin: ReturnType<typeof client>;
  let packageID: number;
  const paths: string[] = [];

  beforeAll(async () => {
    server = await startServer(kind);
    const token = await login(server.url);
    admin = client(server.url, token);
    const bucketID = (await admin.post('/v1/bucket/create', { name: 'b' })).body.data.bucket.bucketID;
    packageID = (await admin.post('/v1/package/create', { bucketID, name: 'p' })).body.data.package.packageID;
    // 50 directories × 99 files, plus top-level files and names whose byte order differs from locale order.
    for (let d = 0; d < 50; d++)
      for (let f = 0; f < 99; f++) paths.push(`dir${String(d).padStart(2, '0')}/f${String(f).padStart(3, '0')}.txt`);
    paths.push('Zebra.txt', 'apple.txt', 'dir00-sibling.txt', 'é.txt', '中文/文件.txt', 'z/deep/er/x.txt');
    for (let i = 0; i < paths.length; i += 500) {
      const form = new FormData();
      form.append('info', JSON.stringify({ packageID }));
      for (const p of paths.slice(i, i + 500)) form.append('files', new Blob([p]), encodeURIComponent(p));
      const res = await fetch(`${server.url}/v1/object/upload`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
        body: form,
      });
      expect(res.status).toBe(200);
    }
  });
  afterAll(async () => {
    await server?.dispose();
  });

  const list = async (q: Record<string, string | number | boolean>) => {
    const res = await admin.get(
      `/v1/object/listByPath?${new URLSearchParams(Object.entries({ packageID, ...q }).map(([k, v]): [string, string] => [k, String(v)]))}`,
    );
    expect(res.status, res.text).toBe(200);
    return res.body.data as { objects: { path: string }[]; commonPrefixes: string[]; isTruncated: boolean; nextContinuationToken: string };
  };
  const byteOrder = (xs: string[]) => [...xs].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));

  it('finds one object by exact path', async () => {
    expect((await list({ path: 'dir07/f042.txt' })).objects.map((o) => o.path)).toEqual(['dir07/f042.txt']);
    expect(await list({ path: 'dir07' })).toEqual({ objects: [], commonPrefixes: [], isTruncated: false, nextContinuationToken: '' });
  });

  it('pages through every object in byte order, 1,000 at a time by default', async () => {
    const seen: string[] = [];
    let token = '';
    let pages = 0;
    do {
      const page = await list({ path: '', isPrefix: true, ...(token ? { continuationToken: token } : {}) });
      expect(page.objects.length).toBeLessThanOrEqual(1000);
      seen.push(...page.objects.map((o) => o.path));
      token = page.nextContinuationToken;
      expect(page.isTruncated).toBe(token !== '');
      pages++;
    } while (token);
    expect(pages).toBe(5);
    expect(seen).toEqual(byteOrder(paths));
  });

  it('folds directories into commonPrefixes, across pages, with maxKeys counting both', async () => {
    const top = await list({ path: '', isPrefix: true, noRecursive: true });
    const expectedPrefixes = [...Array.from({ length: 50 }, (_, d) => `dir${String(d).padStart(2, '0')}/`), 'z/', '中文/'];
    expect(top.commonPrefixes).toEqual(byteOrder(expectedPrefixes));
    expect(top.objects.map((o) => o.path)).toEqual(byteOrder(['Zebra.txt', 'apple.txt', 'dir00-sibling.txt', 'é.txt']));
    expect(top.isTruncated).toBe(false);

    const entries: string[] = [];
    let token = '';
    do {
      const page = await list({ path: '', isPrefix: true, noRecursive: true, maxKeys: 7, ...(token ? { continuationToken: token } : {}) });
      expect(page.objects.length + page.commonPrefixes.length).toBeLessThanOrEqual(7);
      entries.push(...page.commonPrefixes, ...page.objects.map((o) => o.path));
      token = page.nextContinuationToken;
    } while (token);
    expect(byteOrder(entries)).toEqual(byteOrder([...expectedPrefixes, 'Zebra.txt', 'apple.txt', 'dir00-sibling.txt', 'é.txt']));
    expect(new Set(entries).size).toBe(entries.length);

    const inside = await list({ path: 'dir03/', isPrefix: true, noRecursive: true, maxKeys: 10 });
    expect(inside.objects.map((o) => o.path)).toEqual(Array.from({ length: 10 }, (_, f) => `dir03/f${String(f).padStart(3, '0')}.txt`));
    expect(inside.isTruncated).toBe(true);
    expect((await list({ path: 'z/', isPrefix: true, noRecursive: true })).commonPrefixes).toEqual(['z/deep/']);
    // A prefix of multi-byte characters: the fold counts characters, not bytes.
    expect((await list({ path: '中', isPrefix: true, noRecursive: true })).commonPrefixes).toEqual(['中文/']);
    expect((await list({ path: '中文/', isPrefix: true, noRecursive: true })).objects.map((o) => o.path)).toEqual(['中文/文件.txt']);
    // A prefix that is not a directory boundary.
    expect((await list({ path: 'dir00', isPrefix: true, noRecursive: true })).commonPrefixes).toEqual(['dir00/']);
    expect((await list({ path: 'dir00', isPrefix: true, noRecursive: true })).objects.map((o) => o.path)).toEqual(['dir00-sibling.txt']);
  });

  it('refuses bad queries in the storage envelope', async () => {
    for (const q of [
      'packageID=abc',
      `packageID=${packageID}&maxKeys=0`,
      `packageID=${packageID}&maxKeys=-3`,
      `packageID=${packageID}&isPrefix=maybe`,
      `packageID=${packageID}&isPrefix=true&continuationToken=garbage`,
    ]) {
      const res = await admin.get(`/v1/object/listByPath?${q}`);
      expect([res.status, res.body.code], q).toEqual([400, 'BadArgument']);
    }
    const big = await list({ path: '', isPrefix: true, maxKeys: 5000 });
    expect(big.objects.length).toBe(1000);
    expect((await admin.get('/v1/object/listByPath?packageID=999999&path=x')).status).toBe(404);
  });
});
