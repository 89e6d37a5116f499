import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { S3_CREDENTIAL, startS3, type S3Server } from '../helpers/s3.ts';
import { client, login, startServer, type RunningServer } from '../helpers/server.ts';

const kinds = await databaseKinds();
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex').toUpperCase();

/** Every file under `dir`, relative, sorted. */
function filesUnder(dir: string, prefix = ''): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name), `${prefix}${e.name}/`) : [`${prefix}${e.name}`]))
    .sort();
}

describe.each(kinds)('/v1 user spaces on %s', (kind) => {
  let server: RunningServer;
  let s3: S3Server;
  let roots: string;
  let outside: string;
  let token: string;
  let admin: ReturnType<typeof client>;
  let other: ReturnType<typeof client>;
  let bucketID: number;

  const s3Storage = (bucket = 'yunji-test') => ({ type: 'MinIO', endpoint: s3.endpoint, bucket, region: 'us-east-1' });
  const s3Credential = (accessKeyId = S3_CREDENTIAL.accessKeyId) => ({
    type: 'MinIO',
    accessKeyId,
    secretAccessKey: S3_CREDENTIAL.secretAccessKey,
  });
  const upload = (info: unknown, files: [string, Buffer][]) => {
    const form = new FormData();
    form.append('info', JSON.stringify(info));
    for (const [name, content] of files) form.append('files', new Blob([content]), encodeURIComponent(name));
    return fetch(`${server.url}/v1/object/upload`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: form }).then(
      async (r) => ({ status: r.status, body: (await r.json()) as any }),
    );
  };
  const download = (objectID: number, headers: Record<string, string> = {}) =>
    fetch(`${server.url}/v1/object/download?objectID=${objectID}`, { headers: { authorization: `Bearer ${token}`, ...headers } }).then(
      async (r) => ({ status: r.status, bytes: Buffer.from(await r.arrayBuffer()) }),
    );
  const newPackage = async (name: string) =>
    (await admin.post('/v1/package/create', { bucketID, name })).body.data.package.packageID as number;
  const expectCode = (res: { status: number; body: any }, status: number, code: string, what = '') => {
    expect([res.status, res.body.code], `${what} ${JSON.stringify(res.body)}`).toEqual([status, code]);
    if (status !== 200) expect(res.body.data, what).toBeNull();
  };

  beforeAll(async () => {
    s3 = await startS3(['yunji-test', 'yunji-other']);
    roots = mkdtempSync(join(tmpdir(), 'yunji-roots-'));
    outside = mkdtempSync(join(tmpdir(), 'yunji-outside-'));
    // s3rver listens on loopback, which the operator must allow.
    server = await startServer(kind, { env: { YUNJI_LOCAL_ROOTS: roots, YUNJI_SHARD_GRACE: '0', YUNJI_OUTBOUND_ALLOW: '127.0.0.1' } });
    token = await login(server.url);
    admin = client(server.url, token);
    bucketID = (await admin.post('/v1/bucket/create', { name: 'spaces' })).body.data.bucket.bucketID;
    // A second tenant, reached through a second session switched into it.
    const second = await login(server.url);
    const tenant = (await client(server.url, second).post('/api/tenants', { name: 'Other' })).body;
    expect((await client(server.url, second).put('/api/auth/tenant', { tenant_id: tenant.id })).status).toBe(200);
    other = client(server.url, second);
  });
  afterAll(async () => {
    await server?.dispose();
    await s3?.stop();
    rmSync(roots, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  });

  it('lists the default local space, and creates, gets, updates and deletes a local one', async () => {
    const listed = (await admin.get('/v1/userSpace/list')).body.data.userSpaces;
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({
      name: 'local',
      storage: { type: 'local' },
      credential: null,
      shardStore: { maxSize: 0 },
      workingDir: '',
      revision: 1,
    });

    const root = join(roots, 'team');
    const created = await admin.post('/v1/userSpace/create', {
      name: 'disk',
      storage: { type: 'local', root },
      shardStore: { maxSize: 4096 },
      features: [],
      workingDir: 'yunji',
    });
    expectCode(created, 200, 'OK');
    const space = created.body.data.userSpace;
    expect(space).toEqual({
      userSpaceID: expect.any(Number),
      name: 'disk',
      storage: { type: 'local', root },
      credential: null,
      shardStore: { maxSize: 4096 },
      features: [],
      workingDir: 'yunji',
      revision: 1,
    });
    expectCode(await admin.post('/v1/userSpace/create', { name: 'disk', storage: { type: 'local', root } }), 409, 'Conflict', 'same name');
    expect((await admin.get(`/v1/userSpace/get?userSpaceID=${space.userSpaceID}`)).body.data.userSpace).toEqual(space);

    const updated = await admin.post('/v1/userSpace/update', {
      userSpaceID: space.userSpaceID,
      name: 'disk2',
      shardStore: { maxSize: 8192 },
    });
    expect(updated.body.data.userSpace).toMatchObject({ name: 'disk2', shardStore: { maxSize: 8192 }, revision: 2 });
    expectCode(
      await admin.post('/v1/userSpace/update', { userSpaceID: space.userSpaceID, credential: s3Credential() }),
      400,
      'BadArgument',
      'S3 credential on a local space',
    );
    expectCode(
      await admin.post('/v1/userSpace/update', { userSpaceID: space.userSpaceID, storage: { type: 'local', root: outside } }),
      400,
      'BadArgument',
      'storage cannot change',
    );
    expectCode(await admin.post('/v1/userSpace/update', { userSpaceID: 999999, name: 'x' }), 404, 'NotFound');

    expectCode(await admin.post('/v1/userSpace/delete', { userSpaceID: space.userSpaceID }), 200, 'OK');
    expectCode(await admin.post('/v1/userSpace/delete', { userSpaceID: space.userSpaceID }), 200, 'OK', 'already gone');
    expectCode(await admin.get(`/v1/userSpace/get?userSpaceID=${space.userSpaceID}`), 404, 'NotFound');
    expectCode(await admin.post('/v1/userSpace/delete', { userSpaceID: listed[0].userSpaceID }), 409, 'Conflict', 'the default space');
  });

  it('keeps local roots inside the allow-list, away from Yunji and other tenants, and refuses bad configurations', async () => {
    symlinkSync(outside, join(roots, 'escape'));
    const bad: [unknown, string][] = [
      [{ name: 'a', storage: { type: 'local', root: outside } }, 'outside the allow-list'],
      [{ name: 'a', storage: { type: 'local', root: join(roots, 'escape', 'sub') } }, 'through a symlink'],
      [{ name: 'a', storage: { type: 'local', root: 'relative/dir' } }, 'relative root'],
      [{ name: 'a', storage: { type: 'local', root: `${roots}/../${outside.split('/').pop()}` } }, 'dot-dot out'],
      [{ name: 'a', storage: { type: 'local' } }, 'no root'],
      [{ name: 'a', storage: { type: 'local', root: roots, extra: 1 } }, 'unknown storage field'],
      [{ name: 'a', storage: { type: 'FTP', root: roots } }, 'unknown type'],
      [{ name: 'a', storage: s3Storage() }, 'S3 without credential'],
      [{ name: 'a', storage: s3Storage(), credential: { ...s3Credential(), type: 'OBS' } }, 'credential of another type'],
      [{ name: 'a', storage: { ...s3Storage(), endpoint: 'ftp://x' }, credential: s3Credential() }, 'endpoint not http'],
      [{ name: 'a', storage: { ...s3Storage(), endpoint: 'not a url' }, credential: s3Credential() }, 'endpoint not a URL'],
      [{ name: 'a', storage: { ...s3Storage(), bucket: 'x' }, credential: s3Credential() }, 'bucket too short'],
      [{ name: 'a', storage: { type: 'local', root: join(roots, 'ok') }, workingDir: '../up' }, 'workingDir escapes'],
      [{ name: 'a', storage: { type: 'local', root: join(roots, 'ok') }, workingDir: 'x/.yunji' }, 'workingDir reserved'],
      [{ name: 'a', storage: { type: 'local', root: join(roots, 'ok') }, shardStore: { maxSize: -1 } }, 'negative maxSize'],
      [{ name: '', storage: { type: 'local', root: join(roots, 'ok') } }, 'empty name'],
      [{ name: 'a', storage: { type: 'local', root: join(roots, 'ok') }, surprise: true }, 'unknown field'],
      [{ name: 'a', storage: 'local' }, 'storage not an object'],
    ];
    for (const [body, what] of bad) expectCode(await admin.post('/v1/userSpace/create', body), 400, 'BadArgument', what);
    expect(
      (await admin.post('/v1/userSpace/create', { name: 'a', storage: { type: 'local', root: join(roots, 'ok') }, userID: 999 })).status,
    ).toBe(403);

    // Another tenant cannot overlap this tenant's directory, nor see or change its spaces.
    const mine = (await admin.post('/v1/userSpace/create', { name: 'mine', storage: { type: 'local', root: join(roots, 'mine') } })).body
      .data.userSpace;
    for (const root of [join(roots, 'mine'), join(roots, 'mine', 'inner'), roots]) {
      expectCode(
        await other.post('/v1/userSpace/create', { name: 'theirs', storage: { type: 'local', root } }),
        400,
        'BadArgument',
        `overlap ${root}`,
      );
    }
    expectCode(await other.get(`/v1/userSpace/get?userSpaceID=${mine.userSpaceID}`), 404, 'NotFound');
    expectCode(await other.post('/v1/userSpace/update', { userSpaceID: mine.userSpaceID, name: 'stolen' }), 404, 'NotFound');
    expectCode(await other.post('/v1/userSpace/delete', { userSpaceID: mine.userSpaceID }), 200, 'OK', 'absent for them');
    expect((await admin.get(`/v1/userSpace/get?userSpaceID=${mine.userSpaceID}`)).body.data.userSpace.name).toBe('mine');
    expect((await other.get('/v1/userSpace/list')).body.data.userSpaces.map((s: any) => s.name)).toEqual([]);
    expectCode(
      await other.post('/v1/userSpace/createPackage', { userSpaceID: mine.userSpaceID, path: '', bucketID, name: 'x' }),
      404,
      'NotFound',
    );
  });

  it('tests configurations: a probe round trip, or the backend reason', async () => {
    const root = join(roots, 'probe');
    expectCode(await admin.post('/v1/userSpace/test', { storage: { type: 'local', root }, workingDir: 'w' }), 200, 'OK');
    expect(filesUnder(root)).toEqual([]);
    expectCode(
      await admin.post('/v1/userSpace/test', { storage: s3Storage(), credential: s3Credential(), workingDir: 'probe' }),
      200,
      'OK',
    );
    expect(filesUnder(join(s3.directory, 'yunji-test')).filter((f) => f.includes('probe'))).toEqual([]);

    const wrongKey = await admin.post('/v1/userSpace/test', { storage: s3Storage(), credential: s3Credential('NOT-A-KEY') });
    expectCode(wrongKey, 502, 'OperationFailed');
    expect(wrongKey.body.message).toMatch(/refused the credentials.*InvalidAccessKeyId/);
    const noBucket = await admin.post('/v1/userSpace/test', { storage: s3Storage('no-such-bucket'), credential: s3Credential() });
    expectCode(noBucket, 502, 'OperationFailed');
    expect(noBucket.body.message).toMatch(/bucket does not exist/);
    const unreachable = await admin.post('/v1/userSpace/test', {
      storage: { ...s3Storage(), endpoint: 'http://127.0.0.1:9' },
      credential: s3Credential(),
    });
    expectCode(unreachable, 502, 'OperationFailed');
    expect(unreachable.body.message).toMatch(/unreachable$/);
    writeFileSync(join(roots, 'a-file'), 'x');
    const notDir = await admin.post('/v1/userSpace/test', { storage: { type: 'local', root: join(roots, 'a-file') } });
    expectCode(notDir, 502, 'OperationFailed');
  });

  it('keeps S3 secrets sealed and masked, and stores object bytes in an S3 space', async () => {
    const created = await admin.post('/v1/userSpace/create', {
      name: 's3',
      storage: s3Storage(),
      credential: s3Credential(),
      shardStore: { maxSize: 0 },
      workingDir: 'yunji',
    });
    expectCode(created, 200, 'OK');
    const space = created.body.data.userSpace;
    expect(space.credential).toEqual({ type: 'MinIO', accessKeyId: 'S3RVER', secretAccessKey: '********' });
    const sealed = await readSealedCredentials(server);
    expect(sealed.length).toBeGreaterThan(0);
    for (const value of sealed) {
      expect(value).toMatch(/^v2\./);
      expect(value).not.toContain('S3RVER');
    }

    const packageID = await newPackage('in-s3');
    const content = randomBytes(3 * 1024 * 1024 + 17);
    const up = await upload({ packageID, affinity: space.userSpaceID }, [
      ['data/blob.bin', content],
      ['small.txt', Buffer.from('hello')],
    ]);
    expectCode(up, 200, 'OK');
    const [blob] = up.body.data.uploadeds;
    expect(blob.fileHash).toBe(`Full${sha(content)}`);
    const keys = filesUnder(join(s3.directory, 'yunji-test'));
    expect(keys.some((k) => k.startsWith(`yunji/.yunji/shards/${sha(content).slice(0, 2)}/${sha(content)}`))).toBe(true);
    expect((await download(blob.objectID)).bytes.equals(content)).toBe(true);
    const ranged = await download(blob.objectID, { range: 'bytes=1000-1999' });
    expect([ranged.status, ranged.bytes.equals(content.subarray(1000, 2000))]).toEqual([206, true]);

    // Its bytes keep the space alive; once the objects go, it can be deleted.
    expectCode(await admin.post('/v1/userSpace/delete', { userSpaceID: space.userSpaceID }), 409, 'Conflict');
    await admin.post('/v1/package/delete', { packageID });
    expectCode(await admin.post('/v1/userSpace/delete', { userSpaceID: space.userSpaceID }), 200, 'OK');

    // Credentials can be rotated (revision bumps) and a wrong one shows on use.
    const again = (
      await admin.post('/v1/userSpace/create', {
        name: 's3b',
        storage: s3Storage(),
        credential: s3Credential(),
        shardStore: { maxSize: 0 },
      })
    ).body.data.userSpace;
    const rotated = await admin.post('/v1/userSpace/update', { userSpaceID: again.userSpaceID, credential: s3Credential('NOT-A-KEY') });
    expect(rotated.body.data.userSpace.revision).toBe(2);
    const refused = await upload({ packageID: await newPackage('refused'), affinity: again.userSpaceID }, [['x', Buffer.from('x')]]);
    expectCode(refused, 502, 'OperationFailed');
    expect(refused.body.message).toMatch(/credentials/);

    // Another tenant's space is no affinity of ours; a space without shard store keeps no bytes.
    const theirs = (
      await other.post('/v1/userSpace/create', {
        name: 'theirs',
        storage: s3Storage('yunji-other'),
        credential: s3Credential(),
        shardStore: { maxSize: 0 },
      })
    ).body.data.userSpace;
    expectCode(
      await upload({ packageID: await newPackage('cross'), affinity: theirs.userSpaceID }, [['x', Buffer.from('x')]]),
      404,
      'NotFound',
    );
    const bare = (
      await admin.post('/v1/userSpace/create', { name: 'bare', storage: s3Storage(), credential: s3Credential(), shardStore: null })
    ).body.data.userSpace;
    expect(bare.shardStore).toBeNull();
    expectCode(
      await upload({ packageID: await newPackage('bare'), affinity: bare.userSpaceID }, [['x', Buffer.from('x')]]),
      400,
      'BadArgument',
    );
  });

  it('caps a shard store at maxSize: a full space refuses with 507 and keeps nothing partial', async () => {
    const root = join(roots, 'capped');
    const space = (
      await admin.post('/v1/userSpace/create', { name: 'capped', storage: { type: 'local', root }, shardStore: { maxSize: 100_000 } })
    ).body.data.userSpace;
    const packageID = await newPackage('capped');
    const first = randomBytes(30_000);
    expectCode(await upload({ packageID, affinity: space.userSpaceID }, [['first', first]]), 200, 'OK');
    const full = await upload({ packageID, affinity: space.userSpaceID }, [['second', randomBytes(80_000)]]);
    expectCode(full, 507, 'OperationFailed');
    expect(full.body.message).toMatch(/full/);
    // The same bytes again take no room: 70,000 bytes still fit exactly.
    expectCode(await upload({ packageID, affinity: space.userSpaceID }, [['first-again', first]]), 200, 'OK');
    const exact = randomBytes(70_000);
    expectCode(await upload({ packageID, affinity: space.userSpaceID }, [['exact', exact]]), 200, 'OK');
    expectCode(await upload({ packageID, affinity: space.userSpaceID }, [['one-more', Buffer.from('x')]]), 507, 'OperationFailed');
    expect(filesUnder(join(root, '.yunji', 'shards'))).toEqual(
      [`${sha(first).slice(0, 2)}/${sha(first)}`, `${sha(exact).slice(0, 2)}/${sha(exact)}`].sort(),
    );
    expect(filesUnder(join(root, '.yunji', 'tmp'))).toEqual([]);
    expect(filesUnder(join(root, '.yunji', 'partial'))).toEqual([]);
    expect((await admin.get(`/v1/object/getPackageObjects?packageID=${packageID}`)).body.data.objects.map((o: any) => o.path)).toEqual([
      'exact',
      'first',
      'first-again',
    ]);
    // Raising the cap makes room.
    await admin.post('/v1/userSpace/update', { userSpaceID: space.userSpaceID, shardStore: { maxSize: 200_000 } });
    expectCode(await upload({ packageID, affinity: space.userSpaceID }, [['second', randomBytes(80_000)]]), 200, 'OK');
  });

  it('counts the bytes of a space without a cap, concurrent and repeated uploads included, so a cap set later holds exactly', async () => {
    const root = join(roots, 'uncapped');
    const space = (
      await admin.post('/v1/userSpace/create', { name: 'uncapped', storage: { type: 'local', root }, shardStore: { maxSize: 0 } })
    ).body.data.userSpace;
    const packageID = await newPackage('uncapped');
    const contents = Array.from({ length: 24 }, (_, i) => randomBytes(1000 + i));
    // Each content twice at once, under two paths: stored (and counted) once.
    const answers = await Promise.all(
      [...contents, ...contents].map((c, i) => upload({ packageID, affinity: space.userSpaceID }, [[`f${i}`, c]])),
    );
    for (const a of answers) expectCode(a, 200, 'OK');
    const total = contents.reduce((n, c) => n + c.length, 0);
    await admin.post('/v1/userSpace/update', { userSpaceID: space.userSpaceID, shardStore: { maxSize: total + 500 } });
    expectCode(await upload({ packageID, affinity: space.userSpaceID }, [['fits', randomBytes(500)]]), 200, 'OK');
    expectCode(await upload({ packageID, affinity: space.userSpaceID }, [['over', Buffer.from('x')]]), 507, 'OperationFailed');
  });

  it('imports a folder or a file of a space into a new package, and writes a package into a space', async () => {
    const root = join(roots, 'share');
    mkdirSync(join(root, 'docs', 'deep'), { recursive: true });
    writeFileSync(join(root, 'docs', 'a.txt'), 'alpha');
    writeFileSync(join(root, 'docs', 'deep', 'b.bin'), randomBytes(5000));
    writeFileSync(join(root, 'docs', 'a.txt.bak'), 'old alpha');
    writeFileSync(join(outside, 'secret.txt'), 'not yours');
    symlinkSync(join(outside, 'secret.txt'), join(root, 'docs', 'link.txt'));
    symlinkSync(outside, join(root, 'docs', 'linkdir'));
    const space = (await admin.post('/v1/userSpace/create', { name: 'share', storage: { type: 'local', root }, shardStore: null })).body
      .data.userSpace;

    const imported = await admin.post('/v1/userSpace/createPackage', {
      userSpaceID: space.userSpaceID,
      path: 'docs',
      bucketID,
      name: 'docs',
      spaceAffinity: 0,
    });
    expectCode(imported, 200, 'OK');
    const pkg = imported.body.data.package;
    expect(pkg).toMatchObject({ name: 'docs', bucketID, packageID: expect.any(Number), createTime: expect.any(String) });
    const objects = (await admin.get(`/v1/object/getPackageObjects?packageID=${pkg.packageID}`)).body.data.objects;
    expect(objects.map((o: any) => o.path)).toEqual(['a.txt', 'a.txt.bak', 'deep/b.bin']);
    expect((await download(objects[0].objectID)).bytes.toString()).toBe('alpha');
    expect(objects[2].fileHash).toBe(`Full${sha(readFileSync(join(root, 'docs', 'deep', 'b.bin')))}`);

    const single = await admin.post('/v1/userSpace/createPackage', {
      userSpaceID: space.userSpaceID,
      path: 'docs/deep/b.bin',
      bucketID,
      name: 'one',
    });
    expect(
      (await admin.get(`/v1/object/getPackageObjects?packageID=${single.body.data.package.packageID}`)).body.data.objects.map(
        (o: any) => o.path,
      ),
    ).toEqual(['b.bin']);

    expectCode(
      await admin.post('/v1/userSpace/createPackage', { userSpaceID: space.userSpaceID, path: 'docs', bucketID, name: 'docs' }),
      409,
      'Conflict',
      'name taken',
    );
    expectCode(
      await admin.post('/v1/userSpace/createPackage', { userSpaceID: space.userSpaceID, path: 'nothing/here', bucketID, name: 'n' }),
      404,
      'NotFound',
    );
    expectCode(
      await admin.post('/v1/userSpace/createPackage', { userSpaceID: space.userSpaceID, path: 'docs/linkdir', bucketID, name: 'l' }),
      400,
      'BadArgument',
      'through a symlink',
    );
    for (const path of ['../x', '/etc', 'a/../../b', 'docs\\a', 'x\u0000y', '.yunji/shards']) {
      expectCode(
        await admin.post('/v1/userSpace/createPackage', { userSpaceID: space.userSpaceID, path, bucketID, name: 'bad' }),
        400,
        'BadArgument',
        path,
      );
    }
    expectCode(
      await admin.post('/v1/userSpace/createPackage', { userSpaceID: space.userSpaceID, path: 'docs', bucketID: 999999, name: 'x' }),
      404,
      'NotFound',
    );
    expectCode(
      await admin.post('/v1/userSpace/createPackage', {
        userSpaceID: space.userSpaceID,
        path: 'docs',
        bucketID,
        name: 'x',
        spaceAffinity: space.userSpaceID,
      }),
      400,
      'BadArgument',
      'no shard store',
    );

    // Export to the local space and to an S3 space.
    const out = await admin.post('/v1/userSpace/downloadPackage', {
      userSpaceID: space.userSpaceID,
      packageID: pkg.packageID,
      rootPath: 'restored/here',
    });
    expectCode(out, 200, 'OK');
    expect(filesUnder(join(root, 'restored', 'here'))).toEqual(['a.txt', 'a.txt.bak', 'deep/b.bin']);
    expect(readFileSync(join(root, 'restored', 'here', 'deep', 'b.bin')).equals(readFileSync(join(root, 'docs', 'deep', 'b.bin')))).toBe(
      true,
    );
    expect(Math.abs(statSync(join(root, 'restored', 'here', 'a.txt')).mtimeMs - Date.parse(objects[0].updateTime))).toBeLessThan(1000);
    expect(readFileSync(join(outside, 'secret.txt'), 'utf8')).toBe('not yours');
    const s3Space = (
      await admin.post('/v1/userSpace/create', {
        name: 's3-out',
        storage: s3Storage('yunji-other'),
        credential: s3Credential(),
        shardStore: null,
      })
    ).body.data.userSpace;
    expectCode(
      await admin.post('/v1/userSpace/downloadPackage', {
        userSpaceID: s3Space.userSpaceID,
        packageID: pkg.packageID,
        rootPath: 'exports',
      }),
      200,
      'OK',
    );
    expect(filesUnder(join(s3.directory, 'yunji-other')).filter((k) => k.startsWith('exports/'))).toEqual(
      expect.arrayContaining([expect.stringMatching(/^exports\/a\.txt/), expect.stringMatching(/^exports\/deep\/b\.bin/)]),
    );
    // … and back from S3 into a package.
    const back = await admin.post('/v1/userSpace/createPackage', {
      userSpaceID: s3Space.userSpaceID,
      path: 'exports',
      bucketID,
      name: 'from-s3',
    });
    expect(
      (await admin.get(`/v1/object/getPackageObjects?packageID=${back.body.data.package.packageID}`)).body.data.objects.map((o: any) => [
        o.path,
        o.fileHash,
      ]),
    ).toEqual(objects.map((o: any) => [o.path, o.fileHash]));

    for (const rootPath of ['../up', '.yunji', 'a/./b']) {
      expectCode(
        await admin.post('/v1/userSpace/downloadPackage', { userSpaceID: space.userSpaceID, packageID: pkg.packageID, rootPath }),
        400,
        'BadArgument',
        rootPath,
      );
    }
    expectCode(
      await admin.post('/v1/userSpace/downloadPackage', { userSpaceID: space.userSpaceID, packageID: 999999, rootPath: '' }),
      404,
      'NotFound',
    );
    expectCode(
      await other.post('/v1/userSpace/downloadPackage', { userSpaceID: space.userSpaceID, packageID: pkg.packageID, rootPath: '' }),
      404,
      'NotFound',
    );
  });

  it('leaves configuration to admins: viewers read, members cannot create', async () => {
    const viewerKey = (await admin.post('/api/keys', { name: 'viewer', role: 'viewer' })).body.key;
    const memberKey = (await admin.post('/api/keys', { name: 'member', role: 'member' })).body.key;
    const viewer = client(server.url, viewerKey);
    const member = client(server.url, memberKey);
    expect((await viewer.get('/v1/userSpace/list')).status).toBe(200);
    expectCode(
      await member.post('/v1/userSpace/create', { name: 'm', storage: { type: 'local', root: join(roots, 'm') } }),
      403,
      'Forbidden',
    );
    expectCode(await member.post('/v1/userSpace/test', { storage: { type: 'local', root: join(roots, 'm') } }), 403, 'Forbidden');
    const id = (await viewer.get('/v1/userSpace/list')).body.data.userSpaces[0].userSpaceID;
    expectCode(await viewer.post('/v1/userSpace/createPackage', { userSpaceID: id, path: '', bucketID, name: 'v' }), 403, 'Forbidden');
  });
});

/** The sealed credential column as stored, read straight from the database. */
async function readSealedCredentials(server: RunningServer): Promise<string[]> {
  if (server.kind === 'sqlite') {
    const db = new BetterSqlite3(join(server.dataDir, 'yunji.db'), { readonly: true });
    try {
      return (
        db.prepare('select credential_sealed from user_spaces where credential_sealed is not null').all() as { credential_sealed: string }[]
      ).map((r) => r.credential_sealed);
    } finally {
      db.close();
    }
  }
  const pgClient = new pg.Client({ connectionString: server.databaseUrl });
  await pgClient.connect();
  try {
    return (await pgClient.query('select credential_sealed from user_spaces where credential_sealed is not null')).rows.map(
      (r) => r.credential_sealed as string,
    );
  } finally {
    await pgClient.end();
  }
}
