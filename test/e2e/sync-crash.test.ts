import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { S3_CREDENTIAL, startS3, type S3Server } from '../helpers/s3.ts';
import { client, login, startServer, waitForOutput, type RunningServer } from '../helpers/server.ts';
import {
  filesUnder,
  s3Client,
  s3Put,
  sha256,
  startThrottledProxy,
  TERMINAL_STATUSES,
  until,
  type Api,
  type ThrottledProxy,
} from '../helpers/sync.ts';

const kinds = await databaseKinds();
const COUNT = 60;
const SIZE = 128 * 1024;

/** kill -9 in the middle of a sync: after a restart the run is taken up again and completes, and no half-written file is ever at the destination. */
describe.each(kinds)('sync survives kill -9 on %s', (kind) => {
  let server: RunningServer;
  const earlier: RunningServer[] = [];
  let s3: S3Server;
  let proxy: ThrottledProxy;
  let roots: string;
  let admin: Api;
  let token: string;
  const hashes = new Map<string, string>();
  // A killed process's writes keep the sweeper off until its fence expires (3 s here); a sweep every second then takes what they left.
  const env = () => ({
    YUNJI_LOCAL_ROOTS: roots,
    YUNJI_JOB_POLL: '100',
    YUNJI_JOB_LEASE: '2',
    YUNJI_SHARD_GRACE: '0',
    YUNJI_SWEEP_FENCE: '3',
    YUNJI_SWEEP_INTERVAL: '1',
    YUNJI_OUTBOUND_ALLOW: '127.0.0.1',
  });

  beforeAll(async () => {
    roots = mkdtempSync(join(tmpdir(), 'yunji-crash-'));
    s3 = await startS3(['crash-src']);
    proxy = await startThrottledProxy(s3.endpoint);
    const s3c = s3Client(s3.endpoint);
    for (let i = 0; i < COUNT; i++) {
      const body = randomBytes(SIZE);
      const name = `f${String(i).padStart(3, '0')}.bin`;
      hashes.set(name, sha256(body));
      await s3Put(s3c, 'crash-src', `data/${name}`, body);
    }
    server = await startServer(kind, { env: env() });
    token = await login(server.url);
    admin = client(server.url, token);
  });
  afterAll(async () => {
    await server?.stop();
    for (const s of earlier.reverse()) await s.dispose();
    await proxy?.stop();
    await s3?.stop();
    rmSync(roots, { recursive: true, force: true });
  });

  it('a run killed half way is finished after the restart, with only whole files at the destination', async () => {
    const src = await admin.post('/v1/userSpace/create', {
      name: 'slow-src',
      storage: { type: 'MinIO', endpoint: proxy.url, bucket: 'crash-src', region: 'us-east-1' },
      credential: { type: 'MinIO', accessKeyId: S3_CREDENTIAL.accessKeyId, secretAccessKey: S3_CREDENTIAL.secretAccessKey },
      shardStore: null,
    });
    expect(src.body.code, src.text).toBe('OK');
    const dstRoot = join(roots, 'dst');
    mkdirSync(dstRoot);
    const dst = await admin.post('/v1/userSpace/create', { name: 'dst', storage: { type: 'local', root: dstRoot }, shardStore: null });
    const task = await admin.post('/v1/spaceSyncer/createTask', {
      trigger: { type: 'Manual' },
      mode: { type: 'Diff', includeSize: true, includeModTime: true },
      filters: [],
      options: {},
      srcUserSpaceID: src.body.data.userSpace.userSpaceID,
      srcPath: 'data',
      destUserSpaceIDs: [dst.body.data.userSpace.userSpaceID],
      destPathes: ['out'],
    });
    const out = join(dstRoot, 'out');
    const whole = () => {
      const present = filesUnder(out);
      for (const f of present) expect(sha256(readFileSync(join(out, f))), `${f} is not whole`).toBe(hashes.get(f));
      return present.length;
    };

    proxy.setRate(256 * 1024);
    const jobID = (await admin.post('/v1/spaceSyncer/runTask', { taskID: task.body.data.task.taskID })).body.data.jobID as number;
    await until('a dozen files copied', async () => (filesUnder(out).length >= 12 ? true : undefined), 60_000);
    server.proc.kill('SIGKILL');
    await server.stop();
    const before = whole();
    expect(before).toBeLessThan(COUNT);

    earlier.push(server);
    proxy.setRate(0);
    server = await startServer(kind, { dataDir: server.dataDir, databaseUrl: server.databaseUrl, env: env() });
    await waitForOutput(server, /swept unreferenced bytes/);
    admin = client(server.url, token);
    const job = await until(
      `job ${jobID} taken up again and finished`,
      async () => {
        const j = (await admin.get(`/api/jobs/${jobID}`)).body;
        return TERMINAL_STATUSES.includes(j.status) ? j : undefined;
      },
      60_000,
    );
    expect(job.status, JSON.stringify(job)).toBe('succeeded');
    expect(job.attempts).toBeGreaterThanOrEqual(2);
    expect(whole()).toBe(COUNT);
    // The second attempt did not copy again what the first had finished.
    expect(job.stats.skipped).toBeGreaterThanOrEqual(before);
    expect(job.stats.copied + job.stats.skipped).toBe(COUNT);
    // What the killed process was writing is swept from Yunji's own folder once its fence expired (grace 0 here).
    await until("the killed process's partial files to be swept", async () =>
      filesUnder(join(dstRoot, '.yunji', 'partial')).length === 0 ? true : undefined,
    );
  });
});
