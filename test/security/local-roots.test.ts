import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { client, login, startServer, type RunningServer } from '../helpers/server.ts';

const kinds = await databaseKinds();
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex').toUpperCase();

type Api = ReturnType<typeof client>;
type Res = { status: number; body: any; text: string };
interface Tenant {
  api: Api;
  key: string;
  id: number;
  packageID: number;
}

/**
 * A tenant's owner is untrusted: a `local` user space or `local` sync source it makes may not reach
 * into Yunji's own storage (every tenant's default space, present or future, the database, the
 * key), nor into another tenant's local space or source, nor out of the operator's allow-list.
 */
describe.each(kinds)('tenant-made local roots stay out of Yunji and other tenants (%s)', (kind) => {
  let server: RunningServer;
  let base: string;
  let dataDir: string;
  let dbDir: string;
  let session: Api;
  let attacker: Api;
  let attackerTenant: Tenant;
  let attackerPackage: number;

  const expectRefused = (res: Res, what: string) => {
    expect([res.status, res.body?.code], `${what}: ${res.text}`).toEqual([400, 'BadArgument']);
    expect(res.body.data, what).toBeNull();
  };
  const expectSourceRefused = (res: Res, what: string) => {
    expect(res.status, `${what}: ${res.text}`).toBe(400);
    expect(res.body?.message, `${what}: ${res.text}`).toEqual(expect.any(String));
  };
  /** A new tenant owned by the admin, acting through an admin API key of it, with a package. */
  const newTenant = async (name: string): Promise<Tenant> => {
    const created = await session.post('/api/tenants', { name });
    expect(created.status, created.text).toBe(201);
    expect((await session.put('/api/auth/tenant', { tenant_id: created.body.id })).status).toBe(200);
    const key = await session.post('/api/keys', { name: 'owner key', role: 'admin' });
    expect(key.status, key.text).toBe(201);
    const api = client(server.url, key.body.key);
    const bucket = await api.post('/v1/bucket/create', { name: `b-${name}` });
    expect(bucket.body?.code, bucket.text).toBe('OK');
    const pkg = await api.post('/v1/package/create', { bucketID: bucket.body.data.bucket.bucketID, name: 'p' });
    expect(pkg.body?.code, pkg.text).toBe('OK');
    return { api, key: key.body.key as string, id: created.body.id as number, packageID: pkg.body.data.package.packageID as number };
  };
  const upload = async (as: Tenant, path: string, content: Buffer) => {
    const form = new FormData();
    form.append('info', JSON.stringify({ packageID: as.packageID }));
    form.append('files', new Blob([content]), encodeURIComponent(path));
    const res = await fetch(`${server.url}/v1/object/upload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${as.key}` },
      body: form,
    });
    const body = (await res.json()) as any;
    expect([res.status, body.code], JSON.stringify(body)).toEqual([200, 'OK']);
    return body.data.uploadeds[0] as { objectID: number };
  };
  const download = async (as: Tenant, objectID: number) => {
    const res = await fetch(`${server.url}/v1/object/download?objectID=${objectID}`, { headers: { authorization: `Bearer ${as.key}` } });
    return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()) };
  };
  const createSpace = (api: Api, root: string, name = `s-${randomBytes(4).toString('hex')}`) =>
    api.post('/v1/userSpace/create', { name, storage: { type: 'local', root }, shardStore: null });
  const createSource = (api: Api, packageID: number, path: string, name = `src-${randomBytes(4).toString('hex')}`) =>
    api.post('/api/sync/sources', { name, type: 'local', config: { path }, package_id: packageID });
  const defaultRoot = (tenantId: number) => join(dataDir, 'spaces', `tenant-${tenantId}`);

  beforeAll(async () => {
    // The operator allowed a directory that holds the data dir (and, on SQLite, the database file elsewhere).
    base = mkdtempSync(join(tmpdir(), 'yunji-sec-roots-'));
    dataDir = join(base, 'data');
    dbDir = join(base, 'db');
    mkdirSync(dataDir);
    mkdirSync(dbDir);
    server = await startServer(kind, {
      dataDir,
      ...(kind === 'sqlite' ? { databaseUrl: `sqlite:${join(dbDir, 'yunji.db')}` } : {}),
      env: { YUNJI_LOCAL_ROOTS: base, YUNJI_SHARD_GRACE: '0' },
    });
    session = client(server.url, await login(server.url));
    attackerTenant = await newTenant('attacker');
    attacker = attackerTenant.api;
    attackerPackage = attackerTenant.packageID;
  });
  afterAll(async () => {
    await server?.dispose();
    if (base) rmSync(base, { recursive: true, force: true });
  });

  it("refuses a root inside the default space of a tenant not made yet, and the victim's bytes survive", async () => {
    const next = attackerTenant.id + 1;
    // The attack: a space whose root is where the next tenant's shards will be, then an export over them.
    const planted = await createSpace(attacker, join(defaultRoot(next), '.yunji', 'shards'));
    const plantedWhole = await createSpace(attacker, defaultRoot(next + 1));
    const plantedSource = await createSource(attacker, attackerPackage, defaultRoot(next + 2));

    const victim = await newTenant('victim-next');
    expect(victim.id, 'tenant ids are sequential').toBe(next);
    const content = Buffer.from(`the victim's own bytes ${randomBytes(8).toString('hex')}`);
    const stored = await upload(victim, 'mine.txt', content);
    if (planted.body?.code === 'OK') {
      // Same size, other bytes, named where the victim's shard lies inside the attacker's "space".
      const hash = sha(content);
      const forged = Buffer.alloc(content.length, 'x');
      await upload(attackerTenant, `${hash.slice(0, 2)}/${hash}`, forged);
      await attacker.post('/v1/userSpace/downloadPackage', {
        userSpaceID: planted.body.data.userSpace.userSpaceID,
        packageID: attackerPackage,
        rootPath: '',
      });
    }
    const got = await download(victim, stored.objectID);
    expect(got.status).toBe(200);
    expect(got.bytes.equals(content), `the victim downloaded ${JSON.stringify(got.bytes.toString())}`).toBe(true);
    expectRefused(planted, "space root inside a future tenant's shards");
    expectRefused(plantedWhole, "space root at a future tenant's default space");
    expectSourceRefused(plantedSource, "source path at a future tenant's default space");
  });

  it("refuses a root inside an existing tenant's default space, whether it has uploaded or not", async () => {
    const quiet = await newTenant('quiet');
    const busy = await newTenant('busy');
    await upload(busy, 'x.txt', Buffer.from('busy'));
    for (const id of [quiet.id, busy.id, 1]) {
      expectRefused(await createSpace(attacker, defaultRoot(id)), `space at tenant ${id}'s default space`);
      expectRefused(await createSpace(attacker, join(defaultRoot(id), 'deeper', 'still')), `space inside tenant ${id}'s default space`);
      expectSourceRefused(await createSource(attacker, attackerPackage, defaultRoot(id)), `source at tenant ${id}'s default space`);
    }
  });

  it("refuses a root that holds or lies in Yunji's own storage: the data dir, its spaces, the database", async () => {
    const roots = [
      base,
      dataDir,
      join(dataDir, 'spaces'),
      join(dataDir, 'anything'),
      ...(kind === 'sqlite' ? [dbDir, join(dbDir, 'yunji.db')] : []),
    ];
    for (const root of roots) {
      expectRefused(await createSpace(attacker, root), `space root ${root}`);
      expectSourceRefused(await createSource(attacker, attackerPackage, root), `source path ${root}`);
      expectRefused(await attacker.post('/v1/userSpace/test', { storage: { type: 'local', root } }), `test of ${root}`);
    }
  });

  it("keeps one tenant's local spaces and sources apart from another's, in both directions", async () => {
    const victim = await newTenant('neighbour');
    const space = join(base, 'neighbour', 'space');
    const source = join(base, 'neighbour', 'source');
    mkdirSync(space, { recursive: true });
    mkdirSync(source, { recursive: true });
    expect((await createSpace(victim.api, space)).body?.code).toBe('OK');
    expect((await createSource(victim.api, victim.packageID, source)).status).toBe(201);
    // Overlap within one tenant is its own business.
    expect((await createSource(victim.api, victim.packageID, join(space, 'inner'))).status).toBe(201);

    for (const root of [space, join(space, 'sub'), source, join(source, 'sub'), join(base, 'neighbour')]) {
      expectRefused(await createSpace(attacker, root), `space root ${root}`);
      expectSourceRefused(await createSource(attacker, attackerPackage, root), `source path ${root}`);
    }
    // Changing a source's path is checked the same way.
    const own = join(base, 'attacker-own');
    mkdirSync(own, { recursive: true });
    const mine = await createSource(attacker, attackerPackage, own);
    expect(mine.status, mine.text).toBe(201);
    expectSourceRefused(
      await attacker.patch(`/api/sync/sources/${mine.body.id}`, { config: { path: join(source, 'sub') } }),
      'source moved into a neighbour',
    );
    // And the neighbour cannot now claim what the attacker holds.
    expectRefused(await createSpace(victim.api, join(own, 'x')), "space inside the attacker's source");
  });

  it('sees through symlinks and dot-dot segments', async () => {
    const victim = await newTenant('linked');
    const source = join(base, 'linked-source');
    mkdirSync(source, { recursive: true });
    expect((await createSource(victim.api, victim.packageID, source)).status).toBe(201);
    symlinkSync(dataDir, join(base, 'to-data'));
    symlinkSync(source, join(base, 'to-source'));
    const through = [
      join(base, 'to-data', 'spaces', `tenant-${victim.id + 5}`),
      join(base, 'to-data'),
      join(base, 'to-source', 'sub'),
      `${base}/x/../data/spaces/tenant-${victim.id + 6}`,
      `${base}/to-source/../linked-source/deep`,
    ];
    for (const root of through) {
      expectRefused(await createSpace(attacker, root), `space root ${root}`);
      expectSourceRefused(await createSource(attacker, attackerPackage, root), `source path ${root}`);
    }
  });

  it('lets only one of two tenants claim overlapping roots at the same moment', async () => {
    const other = await newTenant('racer');
    for (let round = 0; round < 8; round++) {
      const outer = join(base, `race-${round}`);
      const [a, b] = await Promise.all([
        createSpace(attacker, outer),
        round % 2 ? createSource(other.api, other.packageID, join(outer, 'inner')) : createSpace(other.api, join(outer, 'inner')),
      ]);
      const won = [a.body?.code === 'OK', b.status === 201 || b.body?.code === 'OK'].filter(Boolean).length;
      expect(won, `round ${round}: ${a.text} / ${b.text}`).toBeLessThanOrEqual(1);
    }
  });
});

describe.each(kinds)('an empty YUNJI_LOCAL_ROOTS allows tenants no local root (%s)', (kind) => {
  let server: RunningServer;
  let admin: Api;
  let token: string;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'yunji-sec-noroots-'));
    server = await startServer(kind, { env: { YUNJI_LOCAL_ROOTS: '' } });
    token = await login(server.url);
    admin = client(server.url, token);
  });
  afterAll(async () => {
    await server?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('refuses local spaces, space tests and local sources, naming the setting; the default space still works', async () => {
    for (const root of [dir, join(dir, 'x'), join(server.dataDir, 'elsewhere')]) {
      const space = await admin.post('/v1/userSpace/create', { name: 'disk', storage: { type: 'local', root } });
      expect([space.status, space.body?.code], space.text).toEqual([400, 'BadArgument']);
      expect(space.body.message).toMatch(/YUNJI_LOCAL_ROOTS/);
      const tested = await admin.post('/v1/userSpace/test', { storage: { type: 'local', root } });
      expect([tested.status, tested.body?.code], tested.text).toEqual([400, 'BadArgument']);
    }
    const bucket = (await admin.post('/v1/bucket/create', { name: 'b' })).body.data.bucket.bucketID;
    const packageID = (await admin.post('/v1/package/create', { bucketID: bucket, name: 'p' })).body.data.package.packageID;
    const source = await admin.post('/api/sync/sources', { name: 'src', type: 'local', config: { path: dir }, package_id: packageID });
    expect(source.status, source.text).toBe(400);
    expect(source.body.message).toMatch(/YUNJI_LOCAL_ROOTS/);

    const form = new FormData();
    form.append('info', JSON.stringify({ packageID }));
    form.append('files', new Blob([Buffer.from('still fine')]), 'a.txt');
    const up = await fetch(`${server.url}/v1/object/upload`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: form });
    const body = (await up.json()) as any;
    expect([up.status, body.code], JSON.stringify(body)).toEqual([200, 'OK']);
    const down = await fetch(`${server.url}/v1/object/download?objectID=${body.data.uploadeds[0].objectID}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(await down.text()).toBe('still fine');
  });
});
