import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { S3_CREDENTIAL, startS3, type S3Server } from '../helpers/s3.ts';
import { call, client, keyClient, login, newTenantClient, startServer, type RunningServer } from '../helpers/server.ts';
import {
  emptyDirsUnder,
  filesUnder,
  jobsOfTask,
  observe,
  referenceOf,
  s3Client,
  s3Get,
  s3Keys,
  s3Put,
  sha256,
  startThrottledProxy,
  TERMINAL_STATUSES,
  treeDifference,
  until,
  waitForJob,
  writeTree,
  type Api,
  type ThrottledProxy,
} from '../helpers/sync.ts';

const kinds = await databaseKinds();
const SYNC = '/v1/spaceSyncer';
const KiB = 1024;
const MiB = 1024 * KiB;

type Res = { status: number; body: any; text: string };

/** Space sync tasks (docs/SYNC.md, 004-storage-api §5) against the real server, on local and S3 (s3rver) spaces. */
describe.each(kinds)('/v1/spaceSyncer tasks on %s', (kind) => {
  let server: RunningServer;
  let s3: S3Server;
  let s3c: S3Client;
  let proxy: ThrottledProxy;
  let roots: string;
  let admin: Api;
  let other: Api;
  let viewer: Api;
  let member: Api;

  const expectOK = (res: Res, what: string) => {
    expect([res.status, res.body?.code], `${what}: ${res.text}`).toEqual([200, 'OK']);
  };
  /** A refusal in the storage envelope: `{code, message, data: null}`. */
  const expectRefused = (res: Res, status: number | '4xx', code: string | undefined, what: string) => {
    if (status === '4xx') expect(res.status >= 400 && res.status < 500, `${what}: ${res.status} ${res.text}`).toBe(true);
    else expect(res.status, `${what}: ${res.text}`).toBe(status);
    expect(res.body, `${what}: ${res.text}`).toEqual({ code: code ?? expect.any(String), message: expect.any(String), data: null });
    expect(res.body.code, what).not.toBe('OK');
  };

  let spaceCount = 0;
  /** A new local user space of the admin's tenant, on a fresh directory inside YUNJI_LOCAL_ROOTS. */
  const localSpace = async (name: string) => {
    const root = join(roots, `${name}-${++spaceCount}`);
    mkdirSync(root, { recursive: true });
    const res = await admin.post('/v1/userSpace/create', {
      name: `${name}-${spaceCount}`,
      storage: { type: 'local', root },
      shardStore: null,
    });
    expectOK(res, `create space ${name}`);
    return { id: res.body.data.userSpace.userSpaceID as number, root };
  };
  const s3Space = async (name: string, bucket: string, endpoint = s3.endpoint) => {
    const res = await admin.post('/v1/userSpace/create', {
      name,
      storage: { type: 'MinIO', endpoint, bucket, region: 'us-east-1' },
      credential: { type: 'MinIO', accessKeyId: S3_CREDENTIAL.accessKeyId, secretAccessKey: S3_CREDENTIAL.secretAccessKey },
      shardStore: null,
    });
    expectOK(res, `create S3 space ${name}`);
    return { id: res.body.data.userSpace.userSpaceID as number };
  };

  /** A task body: Manual, Diff on size and time, no filters, default options, unless overridden. */
  const taskBody = (src: number, srcPath: string, dests: [number, string][], over: Record<string, unknown> = {}) => ({
    trigger: { type: 'Manual' },
    mode: { type: 'Diff', includeSize: true, includeModTime: true },
    filters: [],
    options: { noEmptyDirectories: false },
    srcUserSpaceID: src,
    srcPath,
    destUserSpaceIDs: dests.map(([id]) => id),
    destPathes: dests.map(([, p]) => p),
    ...over,
  });
  const createTask = async (body: Record<string, unknown>, api = admin) => {
    const res = await api.post(`${SYNC}/createTask`, body);
    expectOK(res, `createTask ${JSON.stringify(body).slice(0, 300)}`);
    return res.body.data.task as { taskID: number } & Record<string, unknown>;
  };
  const startRun = async (taskID: number, what = '') => {
    const res = await admin.post(`${SYNC}/runTask`, { taskID });
    expectOK(res, `runTask ${taskID} ${what}`);
    expect(res.body.data, 'runTask data').toEqual({ jobID: expect.any(Number) });
    return res.body.data.jobID as number;
  };
  /** runTask, then the job once it has ended. */
  const run = async (taskID: number, what = '') => {
    const jobID = await startRun(taskID, what);
    const job = await waitForJob(admin, jobID);
    expect(job, `job ${jobID}`).toMatchObject({ id: jobID, job_type: 'space_sync', reference_id: referenceOf(taskID) });
    return job;
  };
  /** A succeeded job whose stats include `want`; the message shows the whole job. */
  const expectStats = async (job: any, want: Record<string, number>, what = '') => {
    succeeded(job);
    const matches = Object.entries(want).every(([k, n]) => job.stats?.[k] === n);
    const logs = matches ? undefined : (await admin.get(`/api/jobs/${job.id}/logs`)).text;
    expect(job.stats, `${what} job ${job.id}: ${JSON.stringify(job)}; logs: ${logs}`).toMatchObject(want);
    return job;
  };
  const succeeded = (job: any) => {
    expect(
      job.status,
      `job ${job.id} should succeed: ${JSON.stringify({ status: job.status, error_message: job.error_message, errors: job.errors, stats: job.stats })}`,
    ).toBe('succeeded');
    return job;
  };
  /** The task's first run that has ended (Once and Interval tasks run on creation). */
  const firstEndedRun = (taskID: number) =>
    until(`a finished run of task ${taskID}`, async () =>
      (await jobsOfTask(admin, taskID)).reverse().find((j) => TERMINAL_STATUSES.includes(j.status)),
    );
  const listedTaskIDs = async (api = admin) => {
    const res = await api.get(`${SYNC}/listTasks`);
    expectOK(res, 'listTasks');
    return (res.body.data.tasks as { taskID: number }[]).map((t) => t.taskID);
  };

  beforeAll(async () => {
    s3 = await startS3(['sync-dest', 'sync-src']);
    s3c = s3Client(s3.endpoint);
    proxy = await startThrottledProxy(s3.endpoint);
    roots = mkdtempSync(join(tmpdir(), 'yunji-sync-roots-'));
    // s3rver listens on loopback, which the operator must allow.
    server = await startServer(kind, {
      env: { YUNJI_LOCAL_ROOTS: roots, YUNJI_JOB_POLL: '100', YUNJI_OUTBOUND_ALLOW: '127.0.0.1', YUNJI_MIN_TRIGGER_INTERVAL: '1' },
    });
    const token = await login(server.url);
    admin = client(server.url, token);
    viewer = await keyClient(server.url, admin, 'viewer');
    member = await keyClient(server.url, admin, 'member');
    other = await newTenantClient(server.url, 'Other');
  });
  afterAll(async () => {
    // Whatever was thrown at it, the server still answers.
    if (server) expect((await call(server.url, 'GET', '/healthz')).status).toBe(200);
    await server?.dispose();
    await proxy?.stop();
    s3c?.destroy();
    await s3?.stop();
    if (roots) rmSync(roots, { recursive: true, force: true });
  });

  it('replays the spec example: createTask echoes every field with a taskID, getTask and listTasks show it, and it runs with its Size filter', async () => {
    const a = await localSpace('spec-a');
    const b = await localSpace('spec-b');
    writeTree(join(a.root, 'space1', 'cli'), {
      'nine.bin': Buffer.alloc(9, 1),
      'ten.bin': Buffer.alloc(10, 2),
      'sub/max.bin': Buffer.alloc(20000, 3),
      'sub/over.bin': Buffer.alloc(20001, 4),
    });
    // 004-storage-api §5.1, word for word but the space ids.
    const body = {
      trigger: { type: 'Interval', interval: 30 },
      mode: { type: 'Diff', includeSize: false, includeModTime: true },
      filters: [{ type: 'Size', minSize: 10, maxSize: 20000 }],
      options: { noEmptyDirectories: false },
      srcUserSpaceID: a.id,
      srcPath: 'space1/cli',
      destUserSpaceIDs: [b.id],
      destPathes: ['space2/svr'],
    };
    const created = await admin.post(`${SYNC}/createTask`, body);
    expectOK(created, 'createTask');
    expect(created.body).toEqual({ code: 'OK', message: '', data: { task: { taskID: expect.any(Number), ...body } } });
    const task = created.body.data.task;
    expect(Number.isSafeInteger(task.taskID) && task.taskID > 0).toBe(true);

    const got = await admin.get(`${SYNC}/getTask?taskID=${task.taskID}`);
    expect(got.body).toEqual({ code: 'OK', message: '', data: { task } });
    const listed = await admin.get(`${SYNC}/listTasks`);
    expectOK(listed, 'listTasks');
    expect(listed.body.data.tasks).toEqual([task]);
    // Newest first.
    const manual = await createTask(taskBody(a.id, 'space1/cli', [[b.id, 'space2/manual']]));
    expect((await admin.get(`${SYNC}/listTasks`)).body.data.tasks).toEqual([manual, task]);

    // An Interval task runs when created.
    const job = succeeded(await firstEndedRun(task.taskID));
    expect(job).toMatchObject({ job_type: 'space_sync', reference_id: `spaceSyncTask:${task.taskID}`, error_count: 0 });
    expect(filesUnder(join(b.root, 'space2', 'svr'))).toEqual(['sub/max.bin', 'ten.bin']);
    expect(readFileSync(join(b.root, 'space2', 'svr', 'sub', 'max.bin')).equals(Buffer.alloc(20000, 3))).toBe(true);
    expect(job.stats).toMatchObject({ copied: 2, updated: 0, deleted: 0, failed: 0, bytes: 20010 });

    const cancelled = await admin.post(`${SYNC}/cancelTask`, { taskID: task.taskID });
    expect(cancelled.body).toEqual({ code: 'OK', message: '', data: null });
    expect(await listedTaskIDs()).toEqual([manual.taskID]);
  });

  describe('local to local', () => {
    let src: { id: number; root: string };
    let dst: { id: number; root: string };
    let srcDir: string;
    let total: number;
    const files: Record<string, Buffer | string> = {
      'top.txt': 'top level\n',
      'nested/deep/er/b.bin': randomBytes(5000),
      'ünïcødé/文件 名.txt': 'unicode ✓ 名前',
      'ünïcødé/emoji 🎉.md': '# party',
      'empty.dat': Buffer.alloc(0),
      'big/one-mib.bin': randomBytes(MiB),
    };

    beforeAll(async () => {
      src = await localSpace('ll-src');
      dst = await localSpace('ll-dst');
      srcDir = join(src.root, 'data', 'in');
      // Distinct source times with a millisecond part, well in the past.
      const base = Date.parse('2023-03-04T05:06:07.123Z');
      writeTree(srcDir, files, Object.fromEntries(Object.keys(files).map((k, i) => [k, base + i * 1001])));
      mkdirSync(join(srcDir, 'hollow', 'inner'), { recursive: true });
      total = Object.values(files).reduce((n, c) => n + Buffer.byteLength(c), 0);
    });

    it('copies nested, unicode, empty and 1 MiB files byte for byte with their mtimes; Manual runs only on runTask, Once on creation', async () => {
      const manual = await createTask(taskBody(src.id, 'data/in', [[dst.id, 'copy/manual']]));
      expect(manual).toEqual({ taskID: expect.any(Number), ...taskBody(src.id, 'data/in', [[dst.id, 'copy/manual']]) });
      const once = await createTask(
        taskBody(src.id, 'data/in', [[dst.id, 'copy/once']], { trigger: { type: 'Once' }, options: { noEmptyDirectories: true } }),
      );

      const onceJob = succeeded(await firstEndedRun(once.taskID));
      expect(onceJob.stats).toMatchObject({ copied: 6, failed: 0, bytes: total });
      expect((await jobsOfTask(admin, once.taskID)).map((j) => j.id)).toEqual([onceJob.id]);
      expect(treeDifference(srcDir, join(dst.root, 'copy', 'once'), { mtime: true })).toBeUndefined();
      expect(emptyDirsUnder(join(dst.root, 'copy', 'once')), 'noEmptyDirectories: true').toEqual([]);

      // The Manual task, made before the Once task that has run and ended since, has not run.
      expect(await jobsOfTask(admin, manual.taskID)).toEqual([]);
      expect(existsSync(join(dst.root, 'copy', 'manual'))).toBe(false);

      const job = succeeded(await run(manual.taskID));
      expect(job.stats).toEqual({ checked: expect.any(Number), copied: 6, updated: 0, deleted: 0, skipped: 0, failed: 0, bytes: total });
      expect(job.result).toMatchObject({
        copied: 6,
        updated: 0,
        deleted: 0,
        skipped: 0,
        failed: 0,
        bytes: total,
        destinations: [{ userSpaceID: dst.id, path: 'copy/manual', copied: 6, bytes: total }],
      });
      expect(job.error_count).toBe(0);
      const buttons = (job.buttons as { customId: string }[]).map((b) => b.customId);
      expect(buttons).toEqual(expect.arrayContaining([`yunji::rerun::${job.id}`, `yunji::dry_run::${job.id}`]));
      expect(buttons).not.toContain(`yunji::retry::${job.id}`);
      const out = join(dst.root, 'copy', 'manual');
      expect(treeDifference(srcDir, out, { mtime: true })).toBeUndefined();
      expect(statSync(join(out, 'empty.dat')).size).toBe(0);
      expect(readFileSync(join(out, 'big', 'one-mib.bin')).equals(files['big/one-mib.bin'] as Buffer)).toBe(true);
      expect(readFileSync(join(out, 'ünïcødé', '文件 名.txt'), 'utf8')).toBe('unicode ✓ 名前');
      expect(emptyDirsUnder(out), 'empty source folders are made').toEqual(['hollow/inner']);
      expect((await jobsOfTask(admin, manual.taskID)).map((j) => j.id)).toEqual([job.id]);
    });

    it('runs an Interval task repeatedly until cancelTask stops it', async () => {
      const task = await createTask(
        taskBody(src.id, 'data/in', [[dst.id, 'copy/interval']], { trigger: { type: 'Interval', interval: 1 } }),
      );
      await until(
        'two runs of the interval task',
        async () => ((await jobsOfTask(admin, task.taskID)).length >= 2 ? true : undefined),
        20_000,
      );
      const cancelled = await admin.post(`${SYNC}/cancelTask`, { taskID: task.taskID });
      expect(cancelled.body).toEqual({ code: 'OK', message: '', data: null });

      const settled = await until('the runs to end', async () => {
        const jobs = await jobsOfTask(admin, task.taskID);
        return jobs.every((j) => TERMINAL_STATUSES.includes(j.status)) ? jobs : undefined;
      });
      // Three intervals of watching: no new run.
      const counts = await observe(3000, async () => (await jobsOfTask(admin, task.taskID)).length);
      expect(new Set(counts)).toEqual(new Set([settled.length]));

      const runs = [...settled].sort((x, y) => x.id - y.id);
      expect(runs.length).toBeGreaterThanOrEqual(2);
      await expectStats(runs[0], { copied: 6, failed: 0 });
      for (const later of runs.slice(1).filter((j) => j.status === 'succeeded'))
        expect(later.stats, `run ${later.id}`).toMatchObject({ copied: 0, updated: 0, skipped: 6 });
      for (const j of runs) expect(['succeeded', 'cancelled'], `run ${j.id}`).toContain(j.status);
      expect(treeDifference(srcDir, join(dst.root, 'copy', 'interval'), { mtime: true })).toBeUndefined();

      expect(await listedTaskIDs()).not.toContain(task.taskID);
      expectRefused(await admin.post(`${SYNC}/runTask`, { taskID: task.taskID }), 409, 'Conflict', 'runTask on a cancelled task');
    });
  });

  it('re-runs copy nothing new; Diff sees size, time or (with both off) content; Full copies everything again', async () => {
    const src = await localSpace('diff-src');
    const dst = await localSpace('diff-dst');
    const dir = join(src.root, 'set');
    const t0 = Date.parse('2024-01-02T03:04:05.678Z');
    writeTree(
      dir,
      { 'a.txt': 'alpha', 'b.txt': 'bravo', 'c/d.txt': 'charlie delta', 'c/e.bin': randomBytes(3000), 'f.bin': randomBytes(70_000) },
      t0,
    );
    const diff = (includeSize: boolean, includeModTime: boolean) => ({ mode: { type: 'Diff', includeSize, includeModTime } });
    const sized = await createTask(taskBody(src.id, 'set', [[dst.id, 'sized']], diff(true, true)));
    const timed = await createTask(taskBody(src.id, 'set', [[dst.id, 'timed']], diff(false, true)));
    const hashed = await createTask(taskBody(src.id, 'set', [[dst.id, 'hashed']], diff(false, false)));
    const full = await createTask(taskBody(src.id, 'set', [[dst.id, 'full']], { mode: { type: 'Full' } }));
    const runAll = async (tasks: { taskID: number }[]) => (await Promise.all(tasks.map((t) => run(t.taskID)))).map(succeeded);
    const counts = (job: any) => ({
      copied: job.stats.copied,
      updated: job.stats.updated,
      skipped: job.stats.skipped,
      failed: job.stats.failed,
    });

    // First runs copy all five.
    for (const job of await runAll([sized, timed, hashed, full]))
      expect(counts(job), `first run ${job.reference_id}`).toEqual({ copied: 5, updated: 0, skipped: 0, failed: 0 });

    // No change: nothing copied, all skipped; Full copies all again.
    const [s1, t1, h1, f1] = await runAll([sized, timed, hashed, full]);
    for (const job of [s1, t1, h1]) {
      expect(job.stats, `no-change run ${job.reference_id}`).toMatchObject({
        copied: 0,
        updated: 0,
        deleted: 0,
        skipped: 5,
        failed: 0,
        bytes: 0,
      });
    }
    expect(f1.stats.copied + f1.stats.updated, `Full re-run: ${JSON.stringify(f1.stats)}`).toBe(5);
    expect(f1.stats.skipped).toBe(0);

    // One file changes content and size (and so its time): exactly that one is updated.
    writeFileSync(join(dir, 'c', 'd.txt'), 'charlie delta, and longer now');
    for (const job of await runAll([sized, timed, hashed]))
      expect(counts(job), `after a size change ${job.reference_id}`).toEqual({ copied: 0, updated: 1, skipped: 4, failed: 0 });
    for (const out of ['sized', 'timed', 'hashed'])
      expect(readFileSync(join(dst.root, out, 'c', 'd.txt'), 'utf8'), out).toBe('charlie delta, and longer now');
    expect(treeDifference(dir, join(dst.root, 'sized'), { mtime: true })).toBeUndefined();

    // Same size, same time, other bytes: only the content hash sees it.
    writeFileSync(join(dir, 'a.txt'), 'ALPHA');
    utimesSync(join(dir, 'a.txt'), new Date(t0), new Date(t0));
    const [s2, t2, h2] = await runAll([sized, timed, hashed]);
    expect(counts(s2), 'size+time after a same-size same-time change').toEqual({ copied: 0, updated: 0, skipped: 5, failed: 0 });
    expect(counts(t2), 'time only after a same-size same-time change').toEqual({ copied: 0, updated: 0, skipped: 5, failed: 0 });
    expect(counts(h2), 'content hash after a same-size same-time change').toEqual({ copied: 0, updated: 1, skipped: 4, failed: 0 });
    expect(readFileSync(join(dst.root, 'sized', 'a.txt'), 'utf8')).toBe('alpha');
    expect(readFileSync(join(dst.root, 'hashed', 'a.txt'), 'utf8')).toBe('ALPHA');

    // Only the time changes: size+time and time-only update it, the content hash does not.
    const t1b = t0 + 3_600_000;
    utimesSync(join(dir, 'b.txt'), new Date(t1b), new Date(t1b));
    const [s3r, t3, h3] = await runAll([sized, timed, hashed]);
    expect(counts(s3r), 'size+time after a touch').toEqual({ copied: 0, updated: 1, skipped: 4, failed: 0 });
    expect(counts(t3), 'time only after a touch').toEqual({ copied: 0, updated: 1, skipped: 4, failed: 0 });
    expect(counts(h3), 'content hash after a touch').toEqual({ copied: 0, updated: 0, skipped: 5, failed: 0 });
    expect(Math.abs(statSync(join(dst.root, 'timed', 'b.txt')).mtimeMs - t1b)).toBeLessThanOrEqual(1);

    // Full rewrites even a destination file tampered with behind its back (same size and time).
    const tampered = join(dst.root, 'full', 'b.txt');
    writeFileSync(tampered, 'BRAVO');
    utimesSync(tampered, new Date(t1b), new Date(t1b));
    const [f2] = await runAll([full]);
    expect(f2.stats.copied + f2.stats.updated, `Full run: ${JSON.stringify(f2.stats)}`).toBe(5);
    expect(treeDifference(dir, join(dst.root, 'full'), { mtime: true })).toBeUndefined();
  });

  it('applies Size, Include/Exclude and ModTime filters at their boundaries', async () => {
    const src = await localSpace('filter-src');
    const dst = await localSpace('filter-dst');
    writeTree(join(src.root, 'sz'), {
      's0.bin': Buffer.alloc(0),
      's99.bin': Buffer.alloc(99, 1),
      's100.bin': Buffer.alloc(100, 2),
      's500.bin': Buffer.alloc(500, 3),
      's1000.bin': Buffer.alloc(1000, 4),
      's1001.bin': Buffer.alloc(1001, 5),
    });
    writeTree(
      join(src.root, 'g'),
      Object.fromEntries(
        ['a.txt', 'b.log', 'docs/c.txt', 'docs/d.md', 'docs/sub/e.txt', 'docs/sub/x3.dat', 'tmp/f.txt', 'x1.dat', 'x22.dat'].map((f) => [
          f,
          `content of ${f}`,
        ]),
      ),
    );
    const N = Date.parse('2022-01-01T00:00:00.000Z');
    const O = Date.parse('2023-01-01T00:00:00.000Z');
    const times: Record<string, number> = {
      'before-newer.txt': N - 1000,
      'after-newer.txt': N + 1000,
      'mid.txt': Date.parse('2022-06-01T00:00:00Z'),
      'before-older.txt': O - 1000,
      'after-older.txt': O + 1000,
    };
    writeTree(join(src.root, 'm'), Object.fromEntries(Object.keys(times).map((f) => [f, f])), times);

    const cases: [string, string, unknown[], string[]][] = [
      ['sz', 'inclusive min and max', [{ type: 'Size', minSize: 100, maxSize: 1000 }], ['s100.bin', 's1000.bin', 's500.bin']],
      ['sz', 'min only', [{ type: 'Size', minSize: 1000 }], ['s1000.bin', 's1001.bin']],
      ['sz', 'max only', [{ type: 'Size', maxSize: 100 }], ['s0.bin', 's100.bin', 's99.bin']],
      ['sz', 'min = max', [{ type: 'Size', minSize: 100, maxSize: 100 }], ['s100.bin']],
      [
        'sz',
        'Size and Include together',
        [
          { type: 'Size', maxSize: 500 },
          { type: 'Include', patterns: ['s1*'] },
        ],
        ['s100.bin'],
      ],
      ['g', 'name glob in any folder', [{ type: 'Include', patterns: ['*.txt'] }], ['a.txt', 'docs/c.txt', 'docs/sub/e.txt', 'tmp/f.txt']],
      ['g', '* stops at /', [{ type: 'Include', patterns: ['docs/*'] }], ['docs/c.txt', 'docs/d.md']],
      ['g', '** crosses /', [{ type: 'Include', patterns: ['docs/**'] }], ['docs/c.txt', 'docs/d.md', 'docs/sub/e.txt', 'docs/sub/x3.dat']],
      ['g', 'one folder level', [{ type: 'Include', patterns: ['docs/*/*.txt'] }], ['docs/sub/e.txt']],
      ['g', '? is one character', [{ type: 'Include', patterns: ['x?.dat'] }], ['docs/sub/x3.dat', 'x1.dat']],
      ['g', 'a set', [{ type: 'Include', patterns: ['[ab].*'] }], ['a.txt', 'b.log']],
      [
        'g',
        'two Include filters: either',
        [
          { type: 'Include', patterns: ['*.md'] },
          { type: 'Include', patterns: ['*.log'] },
        ],
        ['b.log', 'docs/d.md'],
      ],
      [
        'g',
        'Include minus Exclude',
        [
          { type: 'Include', patterns: ['*.txt'] },
          { type: 'Exclude', patterns: ['tmp/**'] },
        ],
        ['a.txt', 'docs/c.txt', 'docs/sub/e.txt'],
      ],
      ['g', 'Exclude alone', [{ type: 'Exclude', patterns: ['*.txt', '*.dat'] }], ['b.log', 'docs/d.md']],
      [
        'm',
        'newer and older',
        [{ type: 'ModTime', newerThan: new Date(N).toISOString(), olderThan: new Date(O).toISOString() }],
        ['after-newer.txt', 'before-older.txt', 'mid.txt'],
      ],
      [
        'm',
        'newer only (with an offset)',
        [{ type: 'ModTime', newerThan: '2022-01-01T08:00:00+08:00' }],
        ['after-newer.txt', 'after-older.txt', 'before-older.txt', 'mid.txt'],
      ],
      [
        'm',
        'older only',
        [{ type: 'ModTime', olderThan: new Date(O).toISOString() }],
        ['after-newer.txt', 'before-newer.txt', 'before-older.txt', 'mid.txt'],
      ],
    ];
    // Every case is checked, and all that fail are reported together.
    const failures: string[] = [];
    const check = async (what: string, body: () => Promise<void>) => {
      try {
        await body();
      } catch (err) {
        failures.push(`${what}: ${(err as Error).message.split('\n')[0]}`);
      }
    };
    await Promise.all(
      cases.map(([dir, what, filters, want], i) =>
        check(`${dir}: ${what}`, async () => {
          const task = await createTask(taskBody(src.id, dir, [[dst.id, `f${i}`]], { filters }));
          expect(task.filters, what).toEqual(filters);
          const job = succeeded(await run(task.taskID, `(${dir}: ${what}, filters ${JSON.stringify(filters)})`));
          const out = join(dst.root, `f${i}`);
          expect(filesUnder(out), 'files copied').toEqual(want);
          expect(job.stats.copied, 'stats.copied').toBe(want.length);
          expect(treeDifference(join(src.root, dir), out, { mtime: true, only: want })).toBeUndefined();
        }),
      ),
    );
    await check('a ModTime filter on a Once task', async () => {
      const once = await createTask(
        taskBody(src.id, 'm', [[dst.id, 'once-m']], {
          trigger: { type: 'Once' },
          filters: [{ type: 'ModTime', olderThan: new Date(N).toISOString() }],
        }),
      );
      await expectStats(await firstEndedRun(once.taskID), { copied: 1 });
      expect(filesUnder(join(dst.root, 'once-m'))).toEqual(['before-newer.txt']);
    });
    expect(failures, failures.join('\n')).toEqual([]);
  });

  it('mirrors with options.delete, keeps extra files without it, refuses more deletions than maxDelete, and changes nothing on dryRun', async () => {
    const src = await localSpace('del-src');
    const dst = await localSpace('del-dst');
    writeTree(join(src.root, 'tree'), { 'a.txt': 'a', 'b.txt': 'bb', 'sub/c.txt': 'ccc', 'x.keep': 'source keep' });
    const extras = { 'only-here.txt': 'extra', 'sub/only-here-too.txt': 'extra 2', 'gone/deep/x.txt': 'extra 3' };
    const prepare = (name: string, more: Record<string, string> = {}) => writeTree(join(dst.root, name), { ...extras, ...more });
    for (const name of ['keep', 'mirror', 'capped', 'exact', 'dry', 'filtered'])
      prepare(name, name === 'filtered' ? { 'dest.keep': 'dest only, excluded' } : {});
    const srcFiles = ['a.txt', 'b.txt', 'sub/c.txt', 'x.keep'];
    const task = (name: string, options: Record<string, unknown>, over: Record<string, unknown> = {}) =>
      createTask(taskBody(src.id, 'tree', [[dst.id, name]], { options, ...over }));

    const [keep, mirror, capped, exact, dry, filtered] = await Promise.all([
      task('keep', {}),
      task('mirror', { delete: true }),
      task('capped', { delete: true, maxDelete: 2 }),
      task('exact', { delete: true, maxDelete: 3 }),
      task('dry', { delete: true, dryRun: true }),
      task('filtered', { delete: true }, { filters: [{ type: 'Exclude', patterns: ['*.keep'] }] }),
    ]);
    const [jKeep, jMirror, jCapped, jExact, jDry, jFiltered] = await Promise.all(
      [keep, mirror, capped, exact, dry, filtered].map((t) => run(t.taskID)),
    );

    await expectStats(jKeep, { copied: 4, deleted: 0, failed: 0 });
    expect(filesUnder(join(dst.root, 'keep'))).toEqual([...srcFiles, ...Object.keys(extras)].sort());

    await expectStats(jMirror, { copied: 4, deleted: 3, failed: 0 });
    expect(treeDifference(join(src.root, 'tree'), join(dst.root, 'mirror'), { mtime: true })).toBeUndefined();

    await expectStats(jExact, { copied: 4, deleted: 3 });
    expect(filesUnder(join(dst.root, 'exact'))).toEqual(srcFiles);

    expect(jCapped.status, `maxDelete 2 with 3 to delete: ${JSON.stringify(jCapped)}`).toBe('failed');
    expect(jCapped.error_message).toEqual(expect.any(String));
    for (const f of Object.keys(extras)) expect(existsSync(join(dst.root, 'capped', f)), `capped kept ${f}`).toBe(true);

    await expectStats(jDry, { copied: 4, deleted: 3, failed: 0 });
    expect(filesUnder(join(dst.root, 'dry')), 'dryRun changes nothing').toEqual(Object.keys(extras).sort());

    // Files the filters keep out are neither copied nor deleted.
    await expectStats(jFiltered, { copied: 3, deleted: 3 });
    expect(filesUnder(join(dst.root, 'filtered'))).toEqual(['a.txt', 'b.txt', 'dest.keep', 'sub/c.txt']);
  });

  it('syncs to several destinations at once, local and S3, and refuses mismatched destination lists', async () => {
    const src = await localSpace('multi-src');
    const d1 = await localSpace('multi-d1');
    const d2 = await localSpace('multi-d2');
    const files = {
      'r.txt': 'root file',
      'deep/er/est.bin': randomBytes(200 * KiB),
      'ünï/名 前.txt': 'unicode',
      'zero.dat': Buffer.alloc(0),
    };
    writeTree(join(src.root, 'm'), files, Date.parse('2021-05-05T05:05:05.555Z'));
    const bytes = Object.values(files).reduce((n, c) => n + Buffer.byteLength(c), 0);

    const task = await createTask(
      taskBody(src.id, 'm', [
        [d1.id, 'one'],
        [d2.id, 'two/x'],
      ]),
    );
    const job = succeeded(await run(task.taskID));
    expect(job.stats).toMatchObject({ copied: 8, failed: 0, bytes: 2 * bytes });
    expect(job.result.destinations).toEqual([
      expect.objectContaining({ userSpaceID: d1.id, path: 'one', copied: 4, failed: 0, bytes }),
      expect.objectContaining({ userSpaceID: d2.id, path: 'two/x', copied: 4, failed: 0, bytes }),
    ]);
    expect(treeDifference(join(src.root, 'm'), join(d1.root, 'one'), { mtime: true })).toBeUndefined();
    expect(treeDifference(join(src.root, 'm'), join(d2.root, 'two', 'x'), { mtime: true })).toBeUndefined();

    // Local to S3 (through the counting proxy), then again with nothing changed.
    const bucket = await s3Space('sync-s3-dest', 'sync-dest', proxy.url);
    const toS3 = await createTask(taskBody(src.id, 'm', [[bucket.id, 'backup/x']]));
    await expectStats(await run(toS3.taskID), { copied: 4, failed: 0, bytes });
    const keys = await s3Keys(s3c, 'sync-dest', 'backup/');
    expect(keys).toEqual(
      Object.keys(files)
        .map((f) => `backup/x/${f}`)
        .sort(),
    );
    for (const [f, content] of Object.entries(files))
      expect((await s3Get(s3c, 'sync-dest', `backup/x/${f}`)).equals(Buffer.from(content)), f).toBe(true);
    proxy.resetRequests();
    await expectStats(await run(toS3.taskID), { copied: 0, updated: 0, skipped: 4, failed: 0 }, 'S3 re-run with no change');
    // The times Yunji wrote are recorded: the re-run lists, and HEADs only the folder (is 'backup/x' an object?).
    expect(proxy.requests(), 'requests of the no-change re-run').toEqual({ HEAD: 1, GET: 1 });
    // A file rewritten behind Yunji's back (same size, other bytes) is looked at and copied again.
    await s3Put(s3c, 'sync-dest', 'backup/x/r.txt', Buffer.from('ROOT FILE'));
    proxy.resetRequests();
    await expectStats(
      await run(toS3.taskID),
      { copied: 0, updated: 1, skipped: 3, failed: 0 },
      'S3 re-run after a change at the destination',
    );
    expect(proxy.requests(), 'requests after one change').toEqual({ HEAD: 2, GET: 1, PUT: 1 });
    expect((await s3Get(s3c, 'sync-dest', 'backup/x/r.txt')).toString()).toBe('root file');

    // 16 destinations are allowed; lengths must agree and be 1 … 16.
    const sixteen = Array.from({ length: 16 }, (_, i) => [d1.id, `p${i}`] as [number, string]);
    await createTask(taskBody(src.id, 'm', sixteen));
    const before = await listedTaskIDs();
    const bad: [string, Record<string, unknown>][] = [
      ['2 ids, 1 path', { destUserSpaceIDs: [d1.id, d2.id], destPathes: ['one'] }],
      ['1 id, 2 paths', { destUserSpaceIDs: [d1.id], destPathes: ['one', 'two'] }],
      ['none', { destUserSpaceIDs: [], destPathes: [] }],
      ['17', { destUserSpaceIDs: Array(17).fill(d1.id), destPathes: Array.from({ length: 17 }, (_, i) => `q${i}`) }],
    ];
    for (const [what, over] of bad)
      expectRefused(
        await admin.post(`${SYNC}/createTask`, { ...taskBody(src.id, 'm', [[d1.id, 'one']]), ...over }),
        400,
        'BadArgument',
        what,
      );
    expect(await listedTaskIDs()).toEqual(before);
  });

  describe('hostile input and access', () => {
    let src: { id: number; root: string };
    let dst: { id: number; root: string };
    let mine: { taskID: number } & Record<string, unknown>;
    const valid = () => taskBody(src.id, 'h', [[dst.id, 'out']]);

    beforeAll(async () => {
      src = await localSpace('hostile-src');
      dst = await localSpace('hostile-dst');
      writeTree(join(src.root, 'h'), { 'a.txt': 'a' });
      mine = await createTask(valid());
    });

    it('refuses bad bodies and ids with 4xx in the storage envelope, creating nothing', async () => {
      const before = await listedTaskIDs();
      const v = valid();
      const bad: [string, unknown][] = [
        ['srcPath ..', { ...v, srcPath: '../x' }],
        ['srcPath a/../../b', { ...v, srcPath: 'a/../../b' }],
        ['srcPath a/../b', { ...v, srcPath: 'a/../b' }],
        ['srcPath absolute', { ...v, srcPath: '/etc' }],
        ['srcPath backslash', { ...v, srcPath: 'h\\..\\..' }],
        ['srcPath NUL', { ...v, srcPath: 'h\u0000x' }],
        ['srcPath into .yunji', { ...v, srcPath: '.yunji/shards' }],
        ['destPath into .yunji', { ...v, destPathes: ['.yunji'] }],
        ['destPath ..', { ...v, destPathes: ['../out'] }],
        ['destPath absolute', { ...v, destPathes: ['/tmp/out'] }],
        ['destPath NUL', { ...v, destPathes: ['o\u0000ut'] }],
        ['destPath not a string', { ...v, destPathes: [7] }],
        ['unknown trigger type', { ...v, trigger: { type: 'Weekly' } }],
        ['trigger without type', { ...v, trigger: {} }],
        ['trigger a string', { ...v, trigger: 'Manual' }],
        ['interval 0', { ...v, trigger: { type: 'Interval', interval: 0 } }],
        ['interval negative', { ...v, trigger: { type: 'Interval', interval: -5 } }],
        ['interval fractional', { ...v, trigger: { type: 'Interval', interval: 1.5 } }],
        ['interval over 366 days', { ...v, trigger: { type: 'Interval', interval: 31_622_401 } }],
        ['interval a string', { ...v, trigger: { type: 'Interval', interval: '30' } }],
        ['Interval without interval', { ...v, trigger: { type: 'Interval' } }],
        ['unknown mode type', { ...v, mode: { type: 'Mirror' } }],
        ['includeSize not a boolean', { ...v, mode: { type: 'Diff', includeSize: 'yes', includeModTime: true } }],
        ['unknown filter type', { ...v, filters: [{ type: 'Regex', patterns: ['.*'] }] }],
        ['negative minSize', { ...v, filters: [{ type: 'Size', minSize: -1 }] }],
        ['negative maxSize', { ...v, filters: [{ type: 'Size', maxSize: -1 }] }],
        ['fractional minSize', { ...v, filters: [{ type: 'Size', minSize: 1.5 }] }],
        ['ModTime not a date', { ...v, filters: [{ type: 'ModTime', newerThan: 'yesterday' }] }],
        ['Include without patterns', { ...v, filters: [{ type: 'Include' }] }],
        ['patterns not strings', { ...v, filters: [{ type: 'Include', patterns: [1] }] }],
        ['filters not an array', { ...v, filters: { type: 'Size', minSize: 1 } }],
        ['maxDelete negative', { ...v, options: { delete: true, maxDelete: -1 } }],
        ['maxDelete fractional', { ...v, options: { delete: true, maxDelete: 1.5 } }],
        ['delete not a boolean', { ...v, options: { delete: 'yes' } }],
        ['unknown top-level field', { ...v, surprise: 1 }],
        ['unknown field in trigger', { ...v, trigger: { type: 'Once', every: 3 } }],
        ['unknown field in mode', { ...v, mode: { type: 'Full', fast: true } }],
        ['unknown field in a filter', { ...v, filters: [{ type: 'Size', minSize: 1, unit: 'KB' }] }],
        ['unknown option', { ...v, options: { recursive: true } }],
        ['srcUserSpaceID a string', { ...v, srcUserSpaceID: String(src.id) }],
        ['srcUserSpaceID 0', { ...v, srcUserSpaceID: 0 }],
        ['srcUserSpaceID fractional', { ...v, srcUserSpaceID: 1.5 }],
        ['destUserSpaceIDs not integers', { ...v, destUserSpaceIDs: ['x'] }],
        ['no srcPath', (({ srcPath: _, ...rest }) => rest)(v)],
        ['no trigger', (({ trigger: _, ...rest }) => rest)(v)],
        ['a JSON array', [v]],
        ['JSON null', null],
      ];
      for (const [what, body] of bad) expectRefused(await admin.post(`${SYNC}/createTask`, body), 400, 'BadArgument', what);

      // Enormous: 50,000 patterns (under the body limit), and one pattern of 100,000 characters.
      const many = { ...v, filters: [{ type: 'Include', patterns: Array.from({ length: 50_000 }, (_, i) => `*.x${i}`) }] };
      expect(JSON.stringify(many).length).toBeLessThan(1024 * 1024);
      expectRefused(await admin.post(`${SYNC}/createTask`, many), '4xx', undefined, '50,000 patterns');
      expectRefused(
        await admin.post(`${SYNC}/createTask`, { ...v, filters: [{ type: 'Exclude', patterns: ['*a'.repeat(50_000)] }] }),
        '4xx',
        undefined,
        'a 100,000-character pattern',
      );

      // Not JSON at all.
      const raw = (text: string, contentType = 'application/json') =>
        admin.post(`${SYNC}/createTask`, undefined, { raw: text, headers: { 'content-type': contentType } });
      for (const text of ['not json', '{"trigger": ', ''])
        expectRefused(await raw(text), 400, 'BadArgument', `raw ${JSON.stringify(text)}`);
      expectRefused(await raw(JSON.stringify(v), 'text/plain'), 415, 'UnsupportedMediaType', 'text/plain');

      // Task ids that are not positive integers.
      for (const q of [
        'taskID=abc',
        'taskID=1.5',
        'taskID=-1',
        'taskID=0',
        'taskID=',
        '',
        'taskID=99999999999999999999',
        `taskID=${mine.taskID}%00`,
      ]) {
        expectRefused(await admin.get(`${SYNC}/getTask?${q}`), 400, 'BadArgument', `getTask?${q}`);
      }
      for (const taskID of ['abc', String(mine.taskID), 1.5, -1, 0, null, { id: 1 }, 2 ** 64]) {
        expectRefused(await admin.post(`${SYNC}/runTask`, { taskID }), 400, 'BadArgument', `runTask ${JSON.stringify(taskID)}`);
        expectRefused(await admin.post(`${SYNC}/cancelTask`, { taskID }), 400, 'BadArgument', `cancelTask ${JSON.stringify(taskID)}`);
      }
      expectRefused(await admin.post(`${SYNC}/runTask`, {}), 400, 'BadArgument', 'runTask without taskID');
      expectRefused(
        await admin.post(`${SYNC}/runTask`, { taskID: mine.taskID, extra: true }),
        400,
        'BadArgument',
        'runTask with an unknown field',
      );

      // Absent ids.
      expectRefused(await admin.get(`${SYNC}/getTask?taskID=99999999`), 404, 'NotFound', 'getTask absent');
      expectRefused(await admin.post(`${SYNC}/runTask`, { taskID: 99999999 }), 404, 'NotFound', 'runTask absent');
      expectRefused(await admin.post(`${SYNC}/cancelTask`, { taskID: 99999999 }), 404, 'NotFound', 'cancelTask absent');
      expectRefused(await admin.post(`${SYNC}/createTask`, { ...v, srcUserSpaceID: 99999999 }), 404, 'NotFound', 'absent source space');
      expectRefused(
        await admin.post(`${SYNC}/createTask`, { ...v, destUserSpaceIDs: [99999999] }),
        404,
        'NotFound',
        'absent destination space',
      );

      // The largest interval is allowed.
      const yearly = await createTask({ ...v, trigger: { type: 'Interval', interval: 31_622_400 } });
      expectOK(await admin.post(`${SYNC}/cancelTask`, { taskID: yearly.taskID }), 'cancel the yearly task');
      expect(await listedTaskIDs()).toEqual(before);
      expect(await jobsOfTask(admin, mine.taskID)).toEqual([]);
    });

    it("answers 404 for another tenant's tasks and spaces, and keeps viewers from changing anything", async () => {
      const theirRoot = join(roots, 'their-space');
      mkdirSync(join(theirRoot, 'in'), { recursive: true });
      const created = await other.post('/v1/userSpace/create', {
        name: 'theirs',
        storage: { type: 'local', root: theirRoot },
        shardStore: null,
      });
      expectOK(created, 'their space');
      const theirSpace = created.body.data.userSpace.userSpaceID as number;
      const nf = (res: Res, what: string) => expectRefused(res, 404, 'NotFound', what);
      nf(await other.get(`${SYNC}/getTask?taskID=${mine.taskID}`), 'their getTask of mine');
      nf(await other.post(`${SYNC}/runTask`, { taskID: mine.taskID }), 'their runTask of mine');
      nf(await other.post(`${SYNC}/cancelTask`, { taskID: mine.taskID }), 'their cancelTask of mine');
      nf(await other.post(`${SYNC}/createTask`, taskBody(src.id, 'h', [[theirSpace, 'stolen']])), 'their task from my space');
      nf(await other.post(`${SYNC}/createTask`, taskBody(theirSpace, 'in', [[dst.id, 'planted']])), 'their task into my space');
      nf(
        await other.post(
          `${SYNC}/createTask`,
          taskBody(theirSpace, 'in', [
            [theirSpace, 'ok'],
            [dst.id, 'planted'],
          ]),
        ),
        'their task into their space and mine',
      );
      expect(await listedTaskIDs(other)).toEqual([]);

      const theirs = await createTask(taskBody(theirSpace, 'in', [[theirSpace, 'out']]), other);
      nf(await admin.get(`${SYNC}/getTask?taskID=${theirs.taskID}`), 'my getTask of theirs');
      nf(await admin.post(`${SYNC}/runTask`, { taskID: theirs.taskID }), 'my runTask of theirs');
      nf(await admin.post(`${SYNC}/cancelTask`, { taskID: theirs.taskID }), 'my cancelTask of theirs');
      expect(await listedTaskIDs()).not.toContain(theirs.taskID);
      expect(await listedTaskIDs(other)).toEqual([theirs.taskID]);

      // Viewers read; members and above change.
      const forbidden = (res: Res, what: string) => expectRefused(res, 403, 'Forbidden', what);
      forbidden(await viewer.post(`${SYNC}/createTask`, valid()), 'viewer createTask');
      forbidden(await viewer.post(`${SYNC}/runTask`, { taskID: mine.taskID }), 'viewer runTask');
      forbidden(await viewer.post(`${SYNC}/cancelTask`, { taskID: mine.taskID }), 'viewer cancelTask');
      expect((await viewer.get(`${SYNC}/getTask?taskID=${mine.taskID}`)).body).toEqual({ code: 'OK', message: '', data: { task: mine } });
      expect(await listedTaskIDs(viewer)).toContain(mine.taskID);
      const byMember = await createTask(valid(), member);
      expectOK(await member.post(`${SYNC}/cancelTask`, { taskID: byMember.taskID }), 'member cancelTask');

      // Nothing of that touched my task.
      expect((await admin.get(`${SYNC}/getTask?taskID=${mine.taskID}`)).body.data.task).toEqual(mine);
      expect(await listedTaskIDs()).toContain(mine.taskID);
      expect(await jobsOfTask(admin, mine.taskID)).toEqual([]);
      expect(existsSync(join(dst.root, 'planted'))).toBe(false);
    });
  });

  describe('cancelling a run half way', () => {
    const COUNT = 300;
    const SIZE = 256 * KiB;
    const hashes = new Map<string, string>();
    let source: { id: number };
    let dst: { id: number; root: string };
    const nameOf = (i: number) => `part-${String(i).padStart(3, '0')}.bin`;

    beforeAll(async () => {
      // The source is an S3 bucket read through a proxy that slows downloads, so a run takes seconds.
      for (let start = 0; start < COUNT; start += 25) {
        await Promise.all(
          Array.from({ length: Math.min(25, COUNT - start) }, async (_, k) => {
            const name = nameOf(start + k);
            const body = randomBytes(SIZE);
            hashes.set(name, sha256(body));
            await s3Put(s3c, 'sync-src', `bulk/${name}`, body);
          }),
        );
      }
      source = await s3Space('slow-src', 'sync-src', proxy.url);
      dst = await localSpace('cancel-dst');
    });

    /**
     * What is at the destination once a run has ended: every file one of the source's, whole, and no
     * partial file left in the space. When one is, a few seconds more tell whether the run went on
     * writing after it was reported ended, or left it behind for good.
     */
    const checkComplete = async (dir: string) => {
      const present = filesUnder(dir);
      for (const f of present) {
        expect(hashes.has(f), `unexpected file at the destination: ${f}`).toBe(true);
        expect(
          sha256(readFileSync(join(dir, f))),
          `${f} is not complete and equal to its source (${statSync(join(dir, f)).size} bytes)`,
        ).toBe(hashes.get(f));
      }
      const partialDir = join(dst.root, '.yunji', 'partial');
      const partial = filesUnder(partialDir);
      if (partial.length > 0) {
        const later = await observe(5000, async () => filesUnder(partialDir).length);
        const gone = later.indexOf(0);
        const grew = filesUnder(dir).length - present.length;
        expect(
          partial,
          `partial files in ${partialDir} after the run ended; ${gone >= 0 ? `they were gone ~${gone * 100} ms later` : 'still there 5 s later'}; ${grew} more files appeared at the destination meanwhile`,
        ).toEqual([]);
      }
      return present;
    };
    /** Starts a run and waits until it is running and has written at least `files` files. */
    const runUntilProgress = async (taskID: number, dir: string, files: number) => {
      const jobID = await startRun(taskID);
      let last: any;
      await until(
        `job ${jobID} running with ${files} files written`,
        async () => {
          last = (await admin.get(`/api/jobs/${jobID}`)).body;
          if (TERMINAL_STATUSES.includes(last.status))
            throw new Error(`job ${jobID} ended before it could be cancelled: ${JSON.stringify(last)}`);
          return last.status === 'running' && filesUnder(dir).filter((f) => hashes.has(f)).length >= files ? true : undefined;
        },
        30_000,
        () => JSON.stringify(last),
      );
      return jobID;
    };

    it('a cancelled job leaves only whole files, and the next run copies only the rest', async () => {
      const out = join(dst.root, 'bulk');
      const task = await createTask(taskBody(source.id, 'bulk', [[dst.id, 'bulk']]));
      proxy.setRate(1.5 * MiB);
      try {
        const jobID = await runUntilProgress(task.taskID, out, 10);
        expectRefused(await admin.post(`${SYNC}/runTask`, { taskID: task.taskID }), 409, 'Conflict', 'runTask while a run is running');
        const cancel = await admin.post(`/api/jobs/${jobID}/cancel`);
        expect(cancel.status, cancel.text).toBe(200);
        const ended = await waitForJob(admin, jobID);
        expect(ended.status, JSON.stringify(ended)).toBe('cancelled');
        expect(ended.buttons.map((b: { customId: string }) => b.customId)).toEqual(
          expect.arrayContaining([`yunji::rerun::${jobID}`, `yunji::retry::${jobID}`]),
        );
      } finally {
        proxy.setRate(0);
      }
      const present = await checkComplete(out);
      expect(present.length).toBeGreaterThanOrEqual(10);
      expect(present.length, 'the cancel stopped the run before the end').toBeLessThan(COUNT);

      const again = succeeded(await run(task.taskID));
      expect(again.stats).toMatchObject({ copied: COUNT - present.length, skipped: present.length, updated: 0, failed: 0 });
      expect(again.stats.copied + again.stats.skipped).toBe(COUNT);
      expect(await checkComplete(out)).toHaveLength(COUNT);
    });

    it('cancelTask stops a running run and the task', async () => {
      const out = join(dst.root, 'bulk2');
      const task = await createTask(taskBody(source.id, 'bulk', [[dst.id, 'bulk2']]));
      proxy.setRate(1.5 * MiB);
      try {
        const jobID = await runUntilProgress(task.taskID, out, 5);
        const cancelled = await admin.post(`${SYNC}/cancelTask`, { taskID: task.taskID });
        expect(cancelled.body, cancelled.text).toEqual({ code: 'OK', message: '', data: null });
        const ended = await waitForJob(admin, jobID);
        expect(ended.status, JSON.stringify(ended)).toBe('cancelled');
      } finally {
        proxy.setRate(0);
      }
      expect((await checkComplete(out)).length).toBeLessThan(COUNT);
      expectRefused(await admin.post(`${SYNC}/runTask`, { taskID: task.taskID }), 409, 'Conflict', 'runTask after cancelTask');
      expect(await listedTaskIDs()).not.toContain(task.taskID);
    });
  });
});
