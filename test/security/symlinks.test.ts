import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { client, login, startServer, type RunningServer } from '../helpers/server.ts';
import { localSpaceMaker, TERMINAL_STATUSES, until, writeTree } from '../helpers/sync.ts';

const kinds = await databaseKinds();

type Api = ReturnType<typeof client>;

/** Every file under `dir` (following no symlink), with its bytes. */
function contentsUnder(dir: string): Buffer[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? contentsUnder(join(dir, e.name)) : e.isFile() ? [readFileSync(join(dir, e.name))] : [],
  );
}

/**
 * A symlink inside a local space or a local source is never followed, at the last component of a
 * path or in the middle, whether it points out of the root or inside it: reads treat it as a file
 * that is not there (or fail that file), so no download, import or sync hands out the bytes of a
 * file the link points at.
 */
describe.each(kinds)('symlinks in local spaces and sources are not followed (%s)', (kind) => {
  let server: RunningServer;
  let roots: string;
  let outside: string;
  let token: string;
  let admin: Api;
  let localSpace: ReturnType<typeof localSpaceMaker>;
  let bucketID: number;
  /** The bytes of a file outside every root: no answer may ever carry them. */
  const secret = Buffer.from(`host secret ${randomBytes(24).toString('hex')}`);

  const newPackage = async (name: string) => {
    const res = await admin.post('/v1/package/create', { bucketID, name });
    expect(res.body?.code, res.text).toBe('OK');
    return res.body.data.package.packageID as number;
  };
  const upload = async (packageID: number, path: string, content: Buffer, affinity?: number) => {
    const form = new FormData();
    form.append('info', JSON.stringify({ packageID, ...(affinity ? { affinity } : {}) }));
    form.append('files', new Blob([content]), encodeURIComponent(path));
    const res = await fetch(`${server.url}/v1/object/upload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: form,
    });
    const body = (await res.json()) as any;
    expect([res.status, body.code], JSON.stringify(body)).toEqual([200, 'OK']);
    return body.data.uploadeds[0].objectID as number;
  };
  const download = async (objectID: number, headers: Record<string, string> = {}) => {
    const res = await fetch(`${server.url}/v1/object/download?objectID=${objectID}`, {
      headers: { authorization: `Bearer ${token}`, ...headers },
    });
    return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()) };
  };
  /** The bytes of every object of the package. */
  const packageContents = async (packageID: number) => {
    const objects = (await admin.get(`/v1/object/getPackageObjects?packageID=${packageID}`)).body.data.objects as {
      objectID: number;
      path: string;
    }[];
    return Promise.all(objects.map(async (o) => ({ path: o.path, bytes: (await download(o.objectID)).bytes })));
  };
  const expectNoSecret = (bytes: Buffer, what: string) =>
    expect(bytes.includes(secret.subarray(0, 16)), `${what} carried the outside file's bytes`).toBe(false);
  const waitForJob = (path: string) =>
    until(`${path} to end`, async () => {
      const res = await admin.get(path);
      expect(res.status, res.text).toBe(200);
      return TERMINAL_STATUSES.includes(res.body.status) ? res.body : undefined;
    });
  /** A file of the space's shard store, by the object's content. */
  const shardPath = (root: string, content: Buffer) => {
    const hash = createHash('sha256').update(content).digest('hex').toUpperCase();
    return { dir: join(root, '.yunji', 'shards', hash.slice(0, 2)), file: join(root, '.yunji', 'shards', hash.slice(0, 2), hash) };
  };

  beforeAll(async () => {
    roots = mkdtempSync(join(tmpdir(), 'yunji-sec-links-'));
    outside = mkdtempSync(join(tmpdir(), 'yunji-sec-outside-'));
    writeFileSync(join(outside, 'secret.txt'), secret);
    server = await startServer(kind, { env: { YUNJI_LOCAL_ROOTS: roots, YUNJI_JOB_POLL: '100' } });
    token = await login(server.url);
    admin = client(server.url, token);
    localSpace = localSpaceMaker(admin, roots);
    bucketID = (await admin.post('/v1/bucket/create', { name: 'links' })).body.data.bucket.bucketID;
  });
  afterAll(async () => {
    await server?.dispose();
    if (roots) rmSync(roots, { recursive: true, force: true });
    if (outside) rmSync(outside, { recursive: true, force: true });
  });

  it("never downloads through a symlink that replaced a shard's file or one of its folders", async () => {
    const space = await localSpace({ shardStore: { maxSize: 0 } });
    const packageID = await newPackage('downloads');

    // The last component: the shard's file is now a link to the outside file (of the same size).
    const one = Buffer.alloc(secret.length, 'a');
    const first = await upload(packageID, 'one.txt', one, space.id);
    const shard = shardPath(space.root, one);
    rmSync(shard.file);
    symlinkSync(join(outside, 'secret.txt'), shard.file);
    for (const headers of [{}, { range: 'bytes=0-9' }] as Record<string, string>[]) {
      const got = await download(first, headers);
      expectNoSecret(got.bytes, `a download (${JSON.stringify(headers)}) of a shard that is a link out`);
      expect(got.status, 'a shard that is a symlink is not there').toBeGreaterThanOrEqual(400);
    }

    // A link to a file inside the root is not followed either.
    const two = Buffer.alloc(secret.length, 'b');
    const second = await upload(packageID, 'two.txt', two, space.id);
    const moved = join(space.root, 'kept-elsewhere');
    renameSync(shardPath(space.root, two).file, moved);
    symlinkSync(moved, shardPath(space.root, two).file);
    expect((await download(second)).status, 'a shard linked inside the root').toBeGreaterThanOrEqual(400);

    // The middle: the shard's folder is a link to an outside folder holding a file of its name.
    const three = Buffer.alloc(secret.length, 'c');
    const third = await upload(packageID, 'three.txt', three, space.id);
    const folder = shardPath(space.root, three);
    const decoy = mkdtempSync(join(outside, 'decoy-'));
    writeFileSync(join(decoy, folder.file.slice(folder.dir.length + 1)), secret);
    rmSync(folder.dir, { recursive: true });
    symlinkSync(decoy, folder.dir);
    // A folder is checked when a space's backend first uses it: a change of the space opens it anew
    // (someone who swaps folders on the host while a space is open is out of scope, docs/SECURITY.md).
    const renamed = await admin.post('/v1/userSpace/update', { userSpaceID: space.id, name: `renamed-${space.id}` });
    expect(renamed.body?.code, renamed.text).toBe('OK');
    const got = await download(third);
    expectNoSecret(got.bytes, "a download through a link in the shard's path");
    expect(got.status).toBeGreaterThanOrEqual(400);
  });

  it('never imports (createPackage) or syncs the file a symlink points at', async () => {
    const share = await localSpace();
    writeTree(share.root, { 'docs/real.txt': 'real', 'docs/sub/inner.txt': 'inner' });
    symlinkSync(join(outside, 'secret.txt'), join(share.root, 'docs', 'link.txt'));
    symlinkSync(join(share.root, 'docs', 'real.txt'), join(share.root, 'docs', 'inner-link.txt'));
    symlinkSync(outside, join(share.root, 'docs', 'linkdir'));
    symlinkSync(join(share.root, 'docs', 'sub'), join(share.root, 'docs', 'innerdir'));

    // The folder: only its real files.
    const whole = await admin.post('/v1/userSpace/createPackage', { userSpaceID: share.id, path: 'docs', bucketID, name: 'docs' });
    expect(whole.body?.code, whole.text).toBe('OK');
    expect((await packageContents(whole.body.data.package.packageID)).map((o) => o.path).sort()).toEqual(['real.txt', 'sub/inner.txt']);
    // A link named directly, or a path through one: refused, nothing imported.
    for (const path of [
      'docs/link.txt',
      'docs/inner-link.txt',
      'docs/linkdir',
      'docs/linkdir/secret.txt',
      'docs/innerdir',
      'docs/innerdir/inner.txt',
    ]) {
      const res = await admin.post('/v1/userSpace/createPackage', {
        userSpaceID: share.id,
        path,
        bucketID,
        name: `via-${path.replace(/\//g, '-')}`,
      });
      expect([res.status >= 400 && res.status < 500, res.body?.data], `${path}: ${res.text}`).toEqual([true, null]);
    }

    // A space sync of a link (as a single file), of a path through one, and of the folder.
    const dest = await localSpace();
    mkdirSync(join(outside, 'target'), { recursive: true });
    writeFileSync(join(outside, 'target', 'x.txt'), 'outside, not to be written');
    symlinkSync(join(outside, 'target', 'x.txt'), join(dest.root, 'x.txt'));
    writeFileSync(join(share.root, 'x.txt'), 'written into the space');
    for (const [srcPath, destPath] of [
      ['docs/link.txt', 'single'],
      ['docs/linkdir', 'through'],
      ['docs/inner-link.txt', 'inner'],
      ['docs', 'folder'],
      ['x.txt', ''],
    ]) {
      const task = await admin.post('/v1/spaceSyncer/createTask', {
        trigger: { type: 'Manual' },
        mode: { type: 'Diff', includeSize: true, includeModTime: true },
        filters: [],
        options: { noEmptyDirectories: false },
        srcUserSpaceID: share.id,
        srcPath,
        destUserSpaceIDs: [dest.id],
        destPathes: [destPath],
      });
      expect(task.body?.code, task.text).toBe('OK');
      const run = await admin.post('/v1/spaceSyncer/runTask', { taskID: task.body.data.task.taskID });
      expect(run.body?.code, run.text).toBe('OK');
      await waitForJob(`/api/jobs/${run.body.data.jobID}`);
    }
    for (const bytes of contentsUnder(dest.root)) expectNoSecret(bytes, 'a file of the sync destination');
    expect(readFileSync(join(dest.root, 'folder', 'real.txt'), 'utf8')).toBe('real');
    // A link at the destination is replaced, never written through.
    expect(readFileSync(join(outside, 'target', 'x.txt'), 'utf8')).toBe('outside, not to be written');
    expect(readFileSync(join(dest.root, 'x.txt'), 'utf8')).toBe('written into the space');
  });

  it('never syncs the file a symlink in a local source points at', async () => {
    const dir = join(roots, 'source');
    writeTree(dir, { 'real.txt': 'real', 'sub/inner.txt': 'inner' });
    symlinkSync(join(outside, 'secret.txt'), join(dir, 'link.txt'));
    symlinkSync(outside, join(dir, 'linkdir'));
    symlinkSync(join(dir, 'sub'), join(dir, 'innerdir'));
    const packageID = await newPackage('from-source');
    const source = await admin.post('/api/sync/sources', { name: 'linked', type: 'local', config: { path: dir }, package_id: packageID });
    expect(source.status, source.text).toBe(201);
    const started = await admin.post('/api/sync/jobs', { source: 'linked' });
    expect(started.status, started.text).toBe(200);
    await waitForJob(`/api/sync/jobs/${started.body.id}`);
    const objects = await packageContents(packageID);
    expect(objects.map((o) => o.path).sort()).toEqual(['real.txt', 'sub/inner.txt']);
    for (const o of objects) expectNoSecret(o.bytes, `object ${o.path}`);
  });
});
