import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { fsWorkCases } from '../helpers/fsWork.ts';
import { client, login, projectCopy, startServer, type RunningServer } from '../helpers/server.ts';
import { emptyDirsUnder, localSpaceMaker, treeDifference, waitForJob, writeTree, type Api } from '../helpers/sync.ts';

const kinds = await databaseKinds();

/** The start-up line that says which local file work a server runs. */
function fsWorkLine(server: RunningServer): { fsWork: string; reason?: string } {
  const line = server
    .output()
    .split('\n')
    .find((l) => l.includes('"fsWork"'));
  if (!line) throw new Error(`no local file work line in:\n${server.output()}`);
  return JSON.parse(line) as { fsWork: string; reason?: string };
}

const uploadForm = (packageID: number, files: [string, Buffer][]) => {
  const form = new FormData();
  form.append('info', JSON.stringify({ packageID }));
  for (const [name, content] of files) form.append('files', new Blob([content]), encodeURIComponent(name));
  return form;
};

describe.each(kinds)('a server whose node_modules has no yunji-fs-work, on %s', (kind) => {
  let project: string;
  let roots: string;
  let server: RunningServer;
  let token: string;
  let admin: Api;

  beforeAll(async () => {
    // As after `npm ci` where the module cannot be built: not in node_modules at all.
    project = projectCopy((name) => name !== 'yunji-fs-work');
    roots = mkdtempSync(join(tmpdir(), 'yunji-no-native-roots-'));
    server = await startServer(kind, {
      projectDir: project,
      env: { YUNJI_NATIVE: 'auto', YUNJI_LOCAL_ROOTS: roots, YUNJI_JOB_POLL: '100' },
    });
    token = await login(server.url);
    admin = client(server.url, token);
  });
  afterAll(async () => {
    await server?.dispose();
    if (project) rmSync(project, { recursive: true, force: true });
    if (roots) rmSync(roots, { recursive: true, force: true });
  });

  it('starts on pure Node, saying why: the module is not there', () => {
    expect(() => createRequire(join(project, 'src', 'main.ts')).resolve('yunji-fs-work')).toThrow(/Cannot find module 'yunji-fs-work'/);
    expect(fsWorkLine(server)).toMatchObject({
      fsWork: 'portable',
      reason: expect.stringMatching(/^yunji-fs-work did not load \(Cannot find module 'yunji-fs-work'/),
    });
  });

  it('stores uploads (small ones written whole, large ones streamed) and serves them back byte for byte', async () => {
    const bucketID = (await admin.post('/v1/bucket/create', { name: 'b' })).body.data.bucket.bucketID;
    const packageID = (await admin.post('/v1/package/create', { bucketID, name: 'p' })).body.data.package.packageID;
    const files: [string, Buffer][] = [
      ['small.txt', Buffer.from('small content')],
      ['a/b/medium.bin', randomBytes(100 * 1024)],
      ['large.bin', randomBytes(3 * 1024 * 1024 + 7)],
      ['empty', Buffer.alloc(0)],
    ];
    const res = await fetch(`${server.url}/v1/object/upload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: uploadForm(packageID, files),
    });
    const body = (await res.json()) as any;
    expect([res.status, body.code], JSON.stringify(body)).toEqual([200, 'OK']);
    const uploaded = body.data.uploadeds as { objectID: number; path: string; size: string }[];
    expect(uploaded.map((o) => [o.path, o.size])).toEqual(files.map(([name, content]) => [name, String(content.length)]));
    for (const [i, [name, content]] of files.entries()) {
      const got = await fetch(`${server.url}/v1/object/download?objectID=${uploaded[i]!.objectID}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(got.status, name).toBe(200);
      expect(Buffer.from(await got.arrayBuffer()).equals(content), name).toBe(true);
    }
    const listed = await admin.get(`/v1/object/getPackageObjects?packageID=${packageID}`);
    expect(listed.body.data.objects.map((o: any) => o.path)).toEqual(['a/b/medium.bin', 'empty', 'large.bin', 'small.txt']);
  });

  it('syncs one local space into another, then only what changed', async () => {
    const localSpace = localSpaceMaker(admin, roots);
    const src = await localSpace();
    const dst = await localSpace();
    const tree = {
      'a-b': 'dash',
      'a.b': 'dot',
      'a/b': 'in a folder',
      'a/c/deep.bin': randomBytes(200 * 1024),
      'big.bin': randomBytes(2 * 1024 * 1024),
      'é/ünï.txt': 'accents',
    };
    writeTree(join(src.root, 'from'), tree, 1_700_000_000_123.5);
    mkdirSync(join(src.root, 'from', 'hollow', 'inner'), { recursive: true });
    const task = await admin.post('/v1/spaceSyncer/createTask', {
      trigger: { type: 'Manual' },
      mode: { type: 'Diff', includeSize: true, includeModTime: true },
      filters: [],
      options: { noEmptyDirectories: false },
      srcUserSpaceID: src.id,
      srcPath: 'from',
      destUserSpaceIDs: [dst.id],
      destPathes: ['to'],
    });
    expect(task.body.code, task.text).toBe('OK');
    const run = async () => {
      const started = await admin.post('/v1/spaceSyncer/runTask', { taskID: task.body.data.task.taskID });
      expect(started.body.code, started.text).toBe('OK');
      const job = await waitForJob(admin, started.body.data.jobID);
      expect(job.status, JSON.stringify(job)).toBe('succeeded');
      return job;
    };
    expect((await run()).stats).toMatchObject({ copied: 6, updated: 0, deleted: 0, failed: 0 });
    expect(treeDifference(join(src.root, 'from'), join(dst.root, 'to'), { mtime: true })).toBeUndefined();
    expect(emptyDirsUnder(join(dst.root, 'to'))).toEqual(['hollow/inner']);

    writeTree(join(src.root, 'from'), { 'a/b': 'changed' }, 1_700_000_100_000);
    expect((await run()).stats).toMatchObject({ copied: 0, updated: 1, deleted: 0, failed: 0 });
    expect(treeDifference(join(src.root, 'from'), join(dst.root, 'to'), { mtime: true })).toBeUndefined();
  });
});

describe('YUNJI_NATIVE', () => {
  const servers: RunningServer[] = [];
  afterAll(async () => {
    for (const s of servers) await s.dispose();
  });
  const started = async (setting: string) => {
    const server = await startServer('sqlite', { env: { YUNJI_NATIVE: setting } });
    servers.push(server);
    return fsWorkLine(server);
  };

  it('off runs pure Node, saying so', async () => {
    expect(await started('off')).toMatchObject({ fsWork: 'portable', reason: 'YUNJI_NATIVE is off' });
  });

  it.skipIf(!fsWorkCases[0]!.fs)('auto runs the native module where it is built', async () => {
    expect((await started('auto')).fsWork).toBe('native');
  });
});
