import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import Database from 'better-sqlite3';
import pg from 'pg';
import { client, login, runCli, startServer, waitForOutput, type RunningServer } from '../helpers/server.ts';

/**
 * Tenant quotas: a tenant cannot store more bytes or objects than its quota (the operator's
 * default, or its own set with `yunji admin set-quota`), whichever way objects appear; refused
 * writes keep nothing, and other tenants are not affected.
 */
const kinds = await databaseKinds();
type Api = ReturnType<typeof client>;

const KiB = 1024;
const MiB = 1024 * KiB;
/** The operator's default for every tenant in these tests. */
const OPERATOR_BYTES = 4 * MiB;
const OPERATOR_OBJECTS = 40;

describe.each(kinds)('tenant quotas on %s', (kind) => {
  let server: RunningServer;
  let roots: string;
  let session: Api;
  const operatorEnv = { YUNJI_TENANT_MAX_BYTES: String(OPERATOR_BYTES), YUNJI_TENANT_MAX_OBJECTS: String(OPERATOR_OBJECTS) };

  /** `yunji …` against the test server's database, as the operator runs it beside the server. */
  const yunji = (...args: string[]) => runCli(args, { dataDir: server.dataDir, databaseUrl: server.databaseUrl, env: operatorEnv });

  let tenants = 0;
  /** A new tenant of the admin, worked in through an admin API key (one login for the whole file). */
  const tenant = async () => {
    const name = `quota-${++tenants}`;
    const created = await session.post('/api/tenants', { name });
    expect(created.status, created.text).toBe(201);
    expect((await session.put('/api/auth/tenant', { tenant_id: created.body.id })).status).toBe(200);
    const key = (await session.post('/api/keys', { name: 'quota', role: 'admin' })).body.key as string;
    const api = client(server.url, key);
    tokens.set(api, key);
    const bucketID = (await api.post('/v1/bucket/create', { name: 'b' })).body.data.bucket.bucketID as number;
    const packageID = (await api.post('/v1/package/create', { bucketID, name: 'p' })).body.data.package.packageID as number;
    return { id: created.body.id as number, name, api, bucketID, packageID };
  };

  const upload = async (api: Api, packageID: number, files: [string, Buffer][]) => {
    const form = new FormData();
    form.append('info', JSON.stringify({ packageID }));
    for (const [name, content] of files) form.append('files', new Blob([content]), encodeURIComponent(name));
    const r = await fetch(`${server.url}/v1/object/upload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tokenOf(api)}` },
      body: form,
    });
    return { status: r.status, body: (await r.json()) as any };
  };
  const tokens = new WeakMap<Api, string>();
  const tokenOf = (api: Api) => tokens.get(api)!;
  const usage = async (api: Api) => {
    const r = await api.get('/api/tenants/current/usage');
    expect(r.status, r.text).toBe(200);
    return r.body as { used_bytes: number; used_objects: number; max_bytes: number; max_objects: number };
  };
  const objectsOf = async (api: Api, packageID: number) =>
    (await api.get(`/v1/object/getPackageObjects?packageID=${packageID}`)).body.data.objects as any[];
  const expect507 = (res: { status: number; body: any }, ...numbers: number[]) => {
    expect([res.status, res.body.code], JSON.stringify(res.body)).toEqual([507, 'OperationFailed']);
    expect(res.body.message).toMatch(/quota/);
    for (const n of numbers) expect(res.body.message).toContain(String(n));
  };

  beforeAll(async () => {
    roots = mkdtempSync(join(tmpdir(), 'yunji-quota-roots-'));
    server = await startServer(kind, { env: { ...operatorEnv, YUNJI_LOCAL_ROOTS: roots, YUNJI_SHARD_GRACE: '0' } });
    session = client(server.url, await login(server.url));
  });
  afterAll(async () => {
    await server?.dispose();
    rmSync(roots, { recursive: true, force: true });
  });

  it('refuses an upload past the byte quota with 507 and the numbers, keeps nothing, and frees room on delete', async () => {
    const t = await tenant();
    const set = yunji('admin', 'set-quota', '--tenant', String(t.id), '--max-bytes', String(MiB));
    expect(set.status, set.stderr).toBe(0);
    expect(set.json()).toMatchObject({ tenant_id: t.id, used_bytes: 0, used_objects: 0, max_bytes: MiB, max_objects: OPERATOR_OBJECTS });

    const first = await upload(t.api, t.packageID, [['a.bin', randomBytes(600 * KiB)]]);
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(await usage(t.api)).toMatchObject({ used_bytes: 600 * KiB, used_objects: 1, max_bytes: MiB });

    // Too big for the room left: refused, with the limit, the usage and the size asked.
    const over = await upload(t.api, t.packageID, [['b.bin', randomBytes(500 * KiB)]]);
    expect507(over, MiB, 600 * KiB);
    expect((await objectsOf(t.api, t.packageID)).map((o) => o.path)).toEqual(['a.bin']);
    expect(await usage(t.api)).toMatchObject({ used_bytes: 600 * KiB, used_objects: 1 });

    // Replacing an object counts the difference only.
    expect((await upload(t.api, t.packageID, [['a.bin', randomBytes(700 * KiB)]])).status).toBe(200);
    expect(await usage(t.api)).toMatchObject({ used_bytes: 700 * KiB, used_objects: 1 });

    // Deleting frees the room.
    const [a] = await objectsOf(t.api, t.packageID);
    expect((await t.api.post('/v1/object/delete', { objectIDs: [a.objectID] })).status).toBe(200);
    expect(await usage(t.api)).toMatchObject({ used_bytes: 0, used_objects: 0 });
    expect((await upload(t.api, t.packageID, [['b.bin', randomBytes(900 * KiB)]])).status).toBe(200);
  });

  it('refuses a body larger than the room left before reading it', async () => {
    const t = await tenant();
    expect(yunji('admin', 'set-quota', '--tenant', String(t.id), '--max-bytes', String(MiB)).status).toBe(0);
    // 10 GiB declared, 64 KiB sent: the answer comes on the declared length alone.
    const { hostname, port } = new URL(server.url);
    const answer = await new Promise<string>((resolve) => {
      const socket = connect(Number(port), hostname);
      let raw = '';
      socket.on('data', (d: Buffer) => {
        raw += d.toString();
        if (/\r\n\r\n[^]*\}$/.test(raw)) socket.destroy();
      });
      socket.on('error', () => {});
      socket.on('close', () => resolve(raw));
      socket.write(
        `POST /v1/object/upload HTTP/1.1\r\nHost: ${hostname}\r\nAuthorization: Bearer ${tokenOf(t.api)}\r\n` +
          `Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: ${10 * 1024 * MiB}\r\n\r\n`,
      );
      socket.write(
        `--xyz\r\nContent-Disposition: form-data; name="info"\r\n\r\n{"packageID":${t.packageID}}\r\n--xyz\r\nContent-Disposition: form-data; name="files"; filename="big"\r\n\r\n`,
      );
      socket.write(Buffer.alloc(64 * KiB));
    });
    expect(answer).toMatch(/^HTTP\/1\.1 507/);
    expect(answer).toContain(`quota of ${MiB} bytes`);
    expect(await objectsOf(t.api, t.packageID)).toEqual([]);
  });

  it('refuses completing a multipart upload that lists one part many times over the quota, keeping nothing', async () => {
    const t = await tenant();
    expect(yunji('admin', 'set-quota', '--tenant', String(t.id), '--max-bytes', String(MiB)).status).toBe(0);
    const started = await t.api.post('/v1/object/newMultipartUpload', { packageID: t.packageID, path: 'huge.bin' });
    expect(started.status).toBe(200);
    const objectID = started.body.data.object.objectID as number;
    const form = new FormData();
    form.append('info', JSON.stringify({ objectID, index: 0 }));
    form.append('file', new Blob([randomBytes(256 * KiB)]), 'part');
    const part = await fetch(`${server.url}/v1/object/uploadPart`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tokenOf(t.api)}` },
      body: form,
    });
    expect(part.status).toBe(200);
    // The part's bytes are on disk: they count.
    expect(await usage(t.api)).toMatchObject({ used_bytes: 256 * KiB, used_objects: 1 });

    const asked = 100 * 256 * KiB;
    const done = await t.api.post('/v1/object/completeMultipartUpload', { objectID, indexes: Array.from({ length: 100 }, () => 0) });
    expect507(done, MiB);
    expect(done.body.message).toContain(String(asked - 256 * KiB));
    const [object] = await objectsOf(t.api, t.packageID);
    expect(object).toMatchObject({ objectID, size: '0', redundancy: { type: 'multipartUpload' } });
    expect(await usage(t.api)).toMatchObject({ used_bytes: 256 * KiB, used_objects: 1 });

    // Listed within the quota, it completes; the part's bytes become the object's.
    const fits = await t.api.post('/v1/object/completeMultipartUpload', { objectID, indexes: [0, 0, 0] });
    expect(fits.status, fits.text).toBe(200);
    expect(await usage(t.api)).toMatchObject({ used_bytes: 3 * 256 * KiB, used_objects: 1 });
  });

  it('refuses clones past the object quota, item by item, counting each clone in full', async () => {
    const t = await tenant();
    expect(yunji('admin', 'set-quota', '--tenant', String(t.id), '--max-objects', '3').status).toBe(0);
    expect((await upload(t.api, t.packageID, [['one', randomBytes(1000)]])).status).toBe(200);
    const [one] = await objectsOf(t.api, t.packageID);
    const clonings = ['c1', 'c2', 'c3', 'c4'].map((newPath) => ({ objectID: one.objectID, newPath, newPackageID: t.packageID }));
    const cloned = await t.api.post('/v1/object/clone', { clonings });
    expect(cloned.status).toBe(200);
    expect(cloned.body.data.objects.map((o: any) => o?.path ?? null)).toEqual(['c1', 'c2', null, null]);
    expect(await usage(t.api)).toMatchObject({ used_bytes: 3000, used_objects: 3, max_objects: 3 });
    // The object quota holds uploads and new multipart uploads too.
    expect507(await upload(t.api, t.packageID, [['two', randomBytes(10)]]), 3);
    expect507(await t.api.post('/v1/object/newMultipartUpload', { packageID: t.packageID, path: 'm' }), 3);
    // Deleting the package gives everything in it back.
    expect((await t.api.post('/v1/package/delete', { packageID: t.packageID })).status).toBe(200);
    expect(await usage(t.api)).toMatchObject({ used_bytes: 0, used_objects: 0 });
  });

  it('lets exactly one of two parallel uploads land when each fits but both do not', async () => {
    const t = await tenant();
    expect(yunji('admin', 'set-quota', '--tenant', String(t.id), '--max-bytes', String(MiB)).status).toBe(0);
    const answers = await Promise.all(['x', 'y'].map((name) => upload(t.api, t.packageID, [[name, randomBytes(600 * KiB)]])));
    expect(answers.map((a) => a.status).sort()).toEqual([200, 507]);
    expect(await objectsOf(t.api, t.packageID)).toHaveLength(1);
    expect(await usage(t.api)).toMatchObject({ used_bytes: 600 * KiB, used_objects: 1 });
  });

  it('bounds imports from a space, and exports into a local space, by the room left', async () => {
    const t = await tenant();
    expect(yunji('admin', 'set-quota', '--tenant', String(t.id), '--max-bytes', String(MiB)).status).toBe(0);
    const root = join(roots, `space-${t.id}`);
    mkdirSync(join(root, 'big'), { recursive: true });
    for (let i = 0; i < 3; i++) writeFileSync(join(root, 'big', `f${i}`), randomBytes(400 * KiB));
    const space = (await t.api.post('/v1/userSpace/create', { name: 'disk', storage: { type: 'local', root }, shardStore: null })).body.data
      .userSpace;

    // 1.2 MiB into a 1 MiB quota: no package, nothing counted.
    expect507(
      await t.api.post('/v1/userSpace/createPackage', {
        userSpaceID: space.userSpaceID,
        path: 'big',
        bucketID: t.bucketID,
        name: 'imported',
      }),
      MiB,
    );
    expect((await t.api.get(`/v1/package/getByFullName?bucketName=b&packageName=imported`)).status).toBe(404);
    expect(await usage(t.api)).toMatchObject({ used_bytes: 0, used_objects: 0 });

    // A package of 600 KiB fits; writing it to the server's disk again needs that much room left.
    expect((await upload(t.api, t.packageID, [['x', randomBytes(600 * KiB)]])).status).toBe(200);
    expect507(
      await t.api.post('/v1/userSpace/downloadPackage', { userSpaceID: space.userSpaceID, packageID: t.packageID, rootPath: 'out' }),
      MiB,
      600 * KiB,
    );
    expect(readdirSync(root)).toEqual(['big']);
    // With room for it, it is written (the space's own 1.2 MiB of files count too, measured by set-quota).
    expect(yunji('admin', 'set-quota', '--tenant', String(t.id), '--max-bytes', String(3 * MiB)).status).toBe(0);
    expect(
      (await t.api.post('/v1/userSpace/downloadPackage', { userSpaceID: space.userSpaceID, packageID: t.packageID, rootPath: 'out' }))
        .status,
    ).toBe(200);
    expect(readdirSync(join(root, 'out'))).toEqual(['x']);
  });

  it("leaves other tenants alone, and 'default' brings back the operator's default", async () => {
    const small = await tenant();
    const other = await tenant();
    expect(yunji('admin', 'set-quota', '--tenant', String(small.id), '--max-bytes', String(MiB), '--max-objects', '2').status).toBe(0);
    expect507(await upload(small.api, small.packageID, [['big', randomBytes(2 * MiB)]]), MiB);
    // The other tenant has the operator's default: 2 MiB fits there.
    expect((await upload(other.api, other.packageID, [['big', randomBytes(2 * MiB)]])).status).toBe(200);
    expect(await usage(other.api)).toMatchObject({
      used_bytes: 2 * MiB,
      used_objects: 1,
      max_bytes: OPERATOR_BYTES,
      max_objects: OPERATOR_OBJECTS,
    });
    // Each tenant sees its own usage only; without credentials, nothing.
    expect(await usage(small.api)).toMatchObject({ used_bytes: 0, used_objects: 0, max_bytes: MiB, max_objects: 2 });
    expect((await client(server.url).get('/api/tenants/current/usage')).status).toBe(401);
    // … and the operator's default holds for it as well.
    expect507(await upload(other.api, other.packageID, [['more', randomBytes(3 * MiB)]]), OPERATOR_BYTES, 2 * MiB);

    const back = yunji('admin', 'set-quota', '--tenant', String(small.id), '--max-bytes', 'default', '--max-objects', 'default');
    expect(back.status, back.stderr).toBe(0);
    expect(back.json()).toMatchObject({
      tenant_id: small.id,
      max_bytes: OPERATOR_BYTES,
      max_objects: OPERATOR_OBJECTS,
      overrides: { max_bytes: null, max_objects: null },
    });
    expect((await upload(small.api, small.packageID, [['big', randomBytes(2 * MiB)]])).status).toBe(200);

    // 0: no limit for this tenant, whatever the default.
    const unlimited = yunji('admin', 'set-quota', '--tenant', String(small.id), '--max-bytes', '0');
    expect(unlimited.json()).toMatchObject({ max_bytes: 0, overrides: { max_bytes: 0, max_objects: null } });
    expect((await upload(small.api, small.packageID, [['bigger', randomBytes(5 * MiB)]])).status).toBe(200);

    const shown = yunji('admin', 'show-tenant', '--tenant', String(small.id));
    expect(shown.status, shown.stderr).toBe(0);
    expect(shown.json()).toMatchObject({ tenant_id: small.id, name: small.name, used_bytes: 7 * MiB, used_objects: 2 });
  });

  it('gives back what a deleted bucket held', async () => {
    const t = await tenant();
    expect(
      (
        await upload(t.api, t.packageID, [
          ['a', randomBytes(1000)],
          ['b', randomBytes(2000)],
        ])
      ).status,
    ).toBe(200);
    expect(await usage(t.api)).toMatchObject({ used_bytes: 3000, used_objects: 2 });
    expect((await t.api.post('/v1/bucket/delete', { bucketID: t.bucketID })).status).toBe(200);
    expect(await usage(t.api)).toMatchObject({ used_bytes: 0, used_objects: 0 });
  });

  /** Sets a tenant's counts wrong, as a crash between writing objects and counting them could leave them (wrong both ways). */
  const spoilCount = async (tenantId: number) => {
    const wrong = `update tenant_usage set used_bytes = 5, used_objects = 99 where tenant_id = ${tenantId}`;
    if (kind === 'sqlite') {
      const db = new Database(join(server.dataDir, 'yunji.db'));
      db.exec(wrong);
      db.close();
    } else {
      const db = new pg.Client({ connectionString: server.databaseUrl });
      await db.connect();
      await db.query(wrong);
      await db.end();
    }
  };

  it('repairs a wrong count with `yunji admin recount-usage` beside the running server, printing before and after', async () => {
    const t = await tenant();
    const other = await tenant();
    expect(
      (
        await upload(t.api, t.packageID, [
          ['a', randomBytes(1000)],
          ['b', randomBytes(2000)],
        ])
      ).status,
    ).toBe(200);
    expect((await upload(other.api, other.packageID, [['c', randomBytes(500)]])).status).toBe(200);
    await spoilCount(t.id);
    expect(await usage(t.api)).toMatchObject({ used_bytes: 5, used_objects: 99 });

    const one = yunji('admin', 'recount-usage', '--tenant', String(t.id));
    expect(one.status, one.stderr).toBe(0);
    expect(one.json()).toEqual({
      tenants: [
        {
          tenant_id: t.id,
          before: { used_bytes: 5, used_objects: 99, local_bytes: 0 },
          after: { used_bytes: 3000, used_objects: 2, local_bytes: 0 },
        },
      ],
    });
    expect(await usage(t.api)).toMatchObject({ used_bytes: 3000, used_objects: 2 });
    // The server counts on from the repaired figures.
    expect((await upload(t.api, t.packageID, [['d', randomBytes(100)]])).status).toBe(200);
    expect(await usage(t.api)).toMatchObject({ used_bytes: 3100, used_objects: 3 });

    await spoilCount(other.id);
    const all = yunji('admin', 'recount-usage');
    expect(all.status, all.stderr).toBe(0);
    const recounts = all.json().tenants as { tenant_id: number; before: unknown; after: unknown }[];
    expect(recounts.map((r) => r.tenant_id)).toEqual([...recounts.map((r) => r.tenant_id)].sort((a, b) => a - b));
    expect(recounts.find((r) => r.tenant_id === t.id)).toEqual({
      tenant_id: t.id,
      before: { used_bytes: 3100, used_objects: 3, local_bytes: 0 },
      after: { used_bytes: 3100, used_objects: 3, local_bytes: 0 },
    });
    expect(recounts.find((r) => r.tenant_id === other.id)).toEqual({
      tenant_id: other.id,
      before: { used_bytes: 5, used_objects: 99, local_bytes: 0 },
      after: { used_bytes: 500, used_objects: 1, local_bytes: 0 },
    });
    expect(await usage(other.api)).toMatchObject({ used_bytes: 500, used_objects: 1 });
  });

  it('repairs a wrong count when the server starts again', async () => {
    const t = await tenant();
    expect(
      (
        await upload(t.api, t.packageID, [
          ['a', randomBytes(1000)],
          ['b', randomBytes(2000)],
        ])
      ).status,
    ).toBe(200);
    expect(await server.stop()).toBe(0);
    await spoilCount(t.id);
    const restarted = await startServer(kind, {
      dataDir: server.dataDir,
      databaseUrl: server.databaseUrl,
      env: { ...operatorEnv, YUNJI_LOCAL_ROOTS: roots },
    });
    try {
      await waitForOutput(restarted, /recounted tenant usage/);
      const api = client(restarted.url, tokenOf(t.api));
      expect((await api.get('/api/tenants/current/usage')).body).toMatchObject({ used_bytes: 3000, used_objects: 2 });
    } finally {
      await restarted.stop();
    }
  });

  it('explains malformed set-quota, show-tenant and recount-usage commands with exit code 2 and the usage', () => {
    for (const args of [
      ['set-quota', '--max-bytes', '10'],
      ['set-quota', '--tenant', 'abc', '--max-bytes', '10'],
      ['set-quota', '--tenant', '1', '--max-bytes', '-5'],
      ['set-quota', '--tenant', '1', '--max-objects', '1.5'],
      ['set-quota', '--tenant', '1'],
      ['show-tenant', '--tenant', '1', '--max-byte', '10'],
      ['recount-usage', '--tenant', 'abc'],
      ['recount-usage', '--tenant', '-1'],
    ]) {
      const r = yunji('admin', ...args);
      expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toContain('Usage: yunji');
    }
    const missing = yunji('admin', 'set-quota', '--tenant', '999999', '--max-bytes', '10');
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain('tenant 999999 not found');
    const unknown = yunji('admin', 'recount-usage', '--tenant', '999999');
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toContain('tenant 999999 not found');
    // Each run starts a process: more time than one request.
  }, 180_000);
});
