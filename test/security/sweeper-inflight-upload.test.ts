import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { S3_CREDENTIAL, startS3, type S3Server } from '../helpers/s3.ts';
import { client, login, startServer, waitForOutput, type RunningServer } from '../helpers/server.ts';
import { s3Client, s3Put, startThrottledProxy, type Api, type ThrottledProxy } from '../helpers/sync.ts';

/**
 * The sweeper never takes the bytes of a write still in flight, however long the write takes: the
 * grace period (1 s here, with a sweep every second) is a floor, not the guarantee. Each write
 * below takes several times the grace between its first bytes and its commit, and every file it
 * acknowledges must then download whole.
 */
const kinds = await databaseKinds();
const KiB = 1024;
// A process renews its fence every third of YUNJI_SWEEP_FENCE: every second here.
const GRACE = { YUNJI_SHARD_GRACE: '1', YUNJI_SWEEP_INTERVAL: '1', YUNJI_SWEEP_FENCE: '3' };

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex').toUpperCase();

/** A file of a form upload: its bytes sent in `pieces`, waiting `gapMs` before each piece after the first. */
interface FormFile {
  name: string;
  pieces: Buffer[];
  gapMs?: number;
}

/** A multipart/form-data body (`info` first, then the files) that trickles the pieces of each file as told. */
function formBody(info: unknown, files: FormFile[], field = 'files') {
  const boundary = `yunji${randomBytes(8).toString('hex')}`;
  async function* parts(): AsyncGenerator<Buffer> {
    yield Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="info"\r\n\r\n${JSON.stringify(info)}\r\n`);
    for (const f of files) {
      yield Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="${field}"; filename="${encodeURIComponent(f.name)}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
      );
      for (const [i, piece] of f.pieces.entries()) {
        if (i > 0 && f.gapMs) await sleep(f.gapMs);
        yield piece;
      }
      yield Buffer.from('\r\n');
    }
    yield Buffer.from(`--${boundary}--\r\n`);
  }
  const iterator = parts();
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = await iterator.next();
      if (next.done) controller.close();
      else controller.enqueue(next.value);
    },
  });
  return { body, contentType: `multipart/form-data; boundary=${boundary}` };
}

async function postForm(
  server: RunningServer,
  token: string,
  path: string,
  form: ReturnType<typeof formBody>,
): Promise<{ status: number; body: any }> {
  const res = await fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': form.contentType },
    body: form.body,
    duplex: 'half',
  } as RequestInit);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function download(server: RunningServer, token: string, objectID: number): Promise<{ status: number; bytes: Buffer }> {
  const res = await fetch(`${server.url}/v1/object/download?objectID=${objectID}`, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()) };
}

/** `bytes` cut into `n` pieces (the first holding what is left over). */
function cut(bytes: Buffer, n: number): Buffer[] {
  const size = Math.floor(bytes.length / n);
  const first = bytes.length - size * (n - 1);
  return [bytes.subarray(0, first), ...Array.from({ length: n - 1 }, (_, i) => bytes.subarray(first + i * size, first + (i + 1) * size))];
}

describe.each(kinds)('the sweeper leaves in-flight writes alone on %s', (kind) => {
  let server: RunningServer;
  let s3: S3Server;
  let s3c: S3Client;
  let proxy: ThrottledProxy;
  let token: string;
  let admin: Api;
  let bucketID: number;

  const newPackage = async (name: string) => {
    const res = await admin.post('/v1/package/create', { bucketID, name });
    expect(res.body?.code, JSON.stringify(res.body)).toBe('OK');
    return res.body.data.package.packageID as number;
  };
  /** Every object of the package downloads with the bytes it was given. */
  const expectWhole = async (objects: { objectID: number; path: string }[], want: Map<string, Buffer>) => {
    expect(objects.map((o) => o.path).sort()).toEqual([...want.keys()].sort());
    for (const o of objects) {
      const got = await download(server, token, o.objectID);
      expect(got.status, `download of '${o.path}'`).toBe(200);
      expect(sha(got.bytes), `bytes of '${o.path}'`).toBe(sha(want.get(o.path)!));
    }
  };

  /** Returns once a sweep has run after the call: one that removes bytes unreferenced from now on. */
  const aLaterSweep = async () => {
    const packageID = await newPackage(`garbage-${randomBytes(4).toString('hex')}`);
    const before = server.output().match(/swept unreferenced bytes/g)?.length ?? 0;
    const up = await postForm(
      server,
      token,
      '/v1/object/upload',
      formBody({ packageID }, [{ name: 'garbage.bin', pieces: [randomBytes(KiB)] }]),
    );
    expect(up.body?.code, JSON.stringify(up.body)).toBe('OK');
    expect((await admin.post('/v1/object/delete', { objectIDs: [up.body.data.uploadeds[0].objectID] })).body?.code).toBe('OK');
    await waitForOutput(server, /swept unreferenced bytes/, before + 1, 60_000);
  };

  beforeAll(async () => {
    s3 = await startS3(['import-src']);
    s3c = s3Client(s3.endpoint);
    proxy = await startThrottledProxy(s3.endpoint);
    server = await startServer(kind, {
      env: { ...GRACE, YUNJI_JOB_POLL: '100', YUNJI_WEBHOOK_ALLOW_PRIVATE: '1', YUNJI_OUTBOUND_ALLOW: '127.0.0.1' },
    });
    token = await login(server.url);
    admin = client(server.url, token);
    bucketID = (await admin.post('/v1/bucket/create', { name: 'sweeper' })).body.data.bucket.bucketID;
    // The sweeper runs every second from here on.
    await waitForOutput(server, /swept unreferenced bytes/);
  });
  afterAll(async () => {
    await server?.dispose();
    await proxy?.stop();
    await s3?.stop();
  });

  it('an upload whose later file trickles in over many grace periods keeps every file it acknowledges', async () => {
    const packageID = await newPackage('trickled-upload');
    const want = new Map<string, Buffer>([
      ['first.bin', randomBytes(64 * KiB)],
      ['large-first.bin', randomBytes(600 * KiB)],
      // Past the in-memory size: streamed into a temporary file that sits still between pieces.
      ['slow-large.bin', randomBytes(400 * KiB)],
      ['slow-small.txt', randomBytes(6 * KiB)],
      ['last.txt', randomBytes(3 * KiB)],
    ]);
    const slowLarge = want.get('slow-large.bin')!;
    const files: FormFile[] = [
      { name: 'first.bin', pieces: [want.get('first.bin')!] },
      { name: 'large-first.bin', pieces: [want.get('large-first.bin')!] },
      { name: 'slow-large.bin', pieces: [slowLarge.subarray(0, 300 * KiB), ...cut(slowLarge.subarray(300 * KiB), 4)], gapMs: 1500 },
      { name: 'slow-small.txt', pieces: cut(want.get('slow-small.txt')!, 3), gapMs: 1200 },
      { name: 'last.txt', pieces: [want.get('last.txt')!] },
    ];
    const res = await postForm(server, token, '/v1/object/upload', formBody({ packageID }, files));
    expect([res.status, res.body?.code], JSON.stringify(res.body)).toEqual([200, 'OK']);
    await expectWhole(res.body.data.uploadeds, want);
    // And they stay: the bytes are referenced now, whatever later sweeps do.
    await aLaterSweep();
    await expectWhole(res.body.data.uploadeds, want);
  });

  it('the same content uploaded again while an old unreferenced copy is swept is kept', async () => {
    // An object is deleted: its bytes become old and unreferenced, for the sweeper to take…
    const packageID = await newPackage('again');
    const bytes = randomBytes(300 * KiB);
    const first = await postForm(server, token, '/v1/object/upload', formBody({ packageID }, [{ name: 'x.bin', pieces: [bytes] }]));
    expect(first.body?.code).toBe('OK');
    expect((await admin.post('/v1/object/delete', { objectIDs: [first.body.data.uploadeds[0].objectID] })).body?.code).toBe('OK');
    // …while an upload of the same content, and of a file that trickles, is in flight.
    const want = new Map([
      ['x-again.bin', bytes],
      ['slow.txt', randomBytes(2 * KiB)],
    ]);
    const res = await postForm(
      server,
      token,
      '/v1/object/upload',
      formBody({ packageID }, [
        { name: 'x-again.bin', pieces: [bytes] },
        { name: 'slow.txt', pieces: cut(want.get('slow.txt')!, 4), gapMs: 1200 },
      ]),
    );
    expect([res.status, res.body?.code], JSON.stringify(res.body)).toEqual([200, 'OK']);
    await expectWhole(res.body.data.uploadeds, want);
  });

  it('a multipart part trickled in slowly, then completed, downloads whole', async () => {
    const packageID = await newPackage('multipart');
    const created = await admin.post('/v1/object/newMultipartUpload', { packageID, path: 'joined.bin' });
    expect(created.body?.code, JSON.stringify(created.body)).toBe('OK');
    const objectID = created.body.data.object.objectID as number;
    const part0 = randomBytes(100 * KiB);
    const part1 = randomBytes(400 * KiB);
    const up0 = await postForm(
      server,
      token,
      '/v1/object/uploadPart',
      formBody({ objectID, index: 0 }, [{ name: 'p0', pieces: [part0] }], 'file'),
    );
    expect([up0.status, up0.body?.code], JSON.stringify(up0.body)).toEqual([200, 'OK']);
    const slow = [part1.subarray(0, 300 * KiB), ...cut(part1.subarray(300 * KiB), 4)];
    const up1 = await postForm(
      server,
      token,
      '/v1/object/uploadPart',
      formBody({ objectID, index: 1 }, [{ name: 'p1', pieces: slow, gapMs: 1500 }], 'file'),
    );
    expect([up1.status, up1.body?.code], JSON.stringify(up1.body)).toEqual([200, 'OK']);
    const done = await admin.post('/v1/object/completeMultipartUpload', { objectID, indexes: [0, 1, 0] });
    expect(done.body?.code, JSON.stringify(done.body)).toBe('OK');
    const got = await download(server, token, objectID);
    expect(got.status).toBe(200);
    expect(sha(got.bytes)).toBe(sha(Buffer.concat([part0, part1, part0])));
  });

  it('a package import from a slow space keeps every file it imports', async () => {
    const want = new Map<string, Buffer>();
    for (let i = 0; i < 6; i++) want.set(`small-${i}.bin`, randomBytes(4 * KiB + i));
    // Read through the throttle at 256 KiB/s: about 6 s for this one, the small ones done long before.
    want.set('zz-slow.bin', randomBytes(1536 * KiB));
    for (const [path, bytes] of want) await s3Put(s3c, 'import-src', `data/${path}`, bytes);
    const space = await admin.post('/v1/userSpace/create', {
      name: 'slow-source',
      storage: { type: 'MinIO', endpoint: proxy.url, bucket: 'import-src', region: 'us-east-1' },
      credential: { type: 'MinIO', accessKeyId: S3_CREDENTIAL.accessKeyId, secretAccessKey: S3_CREDENTIAL.secretAccessKey },
      shardStore: null,
    });
    expect(space.body?.code, JSON.stringify(space.body)).toBe('OK');
    proxy.setRate(256 * KiB);
    try {
      const res = await admin.post('/v1/userSpace/createPackage', {
        userSpaceID: space.body.data.userSpace.userSpaceID,
        path: 'data',
        bucketID,
        name: 'imported',
      });
      expect(res.body?.code, JSON.stringify(res.body)).toBe('OK');
      const objects = await admin.get(`/v1/object/getPackageObjects?packageID=${res.body.data.package.packageID}`);
      expect(objects.body?.code, JSON.stringify(objects.body)).toBe('OK');
      await expectWhole(objects.body.data.objects, want);
    } finally {
      proxy.setRate(0);
    }
  });
});
