import { createHash, randomBytes } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { S3_CREDENTIAL, startS3, type S3Server } from '../helpers/s3.ts';
import { client, login, startServer, waitForOutput, type RunningServer } from '../helpers/server.ts';
import type { Api } from '../helpers/sync.ts';

/**
 * The sweeper never removes bytes an upload acknowledges, even when the upload's content is
 * stored already as an old, unreferenced shard that a sweep is removing at that very moment: the
 * upload finds the shard, relies on it, and must not answer before it knows the shard stays. The
 * S3 space here answers the sweep's DELETE of that shard 3 s late, so the upload of the same
 * content runs entirely between the sweep's last look at the shard and its removal.
 */
const kinds = await databaseKinds();
const KiB = 1024;
const GRACE = { YUNJI_SHARD_GRACE: '1', YUNJI_SWEEP_INTERVAL: '1', YUNJI_SWEEP_FENCE: '3' };
const HELD_MS = 3000;

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex').toUpperCase();

/** A proxy to an S3 endpoint that holds back a DELETE of a key ending in `hash` for HELD_MS. */
interface DeleteHolder {
  url: string;
  /** Resolves when a DELETE of `hash` arrives (it is held), with a promise of its answer. */
  holdDeleteOf(hash: string): Promise<{ answered: Promise<void> }>;
  stop(): Promise<void>;
}

async function startDeleteHolder(target: string): Promise<DeleteHolder> {
  const waiting = new Map<string, (held: { answered: Promise<void> }) => void>();
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    const forward = () => {
      const upstream = httpRequest(target + req.url, { method: req.method, headers: req.headers }, (up: IncomingMessage) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    };
    // s3rver has no ListMultipartUploads (a sweep lists them first): none are open here.
    if (req.method === 'GET' && /[?&]uploads(=|&|$)/.test(req.url ?? '')) {
      res.writeHead(200, { 'content-type': 'application/xml' });
      res.end(
        '<?xml version="1.0" encoding="UTF-8"?><ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>',
      );
      return;
    }
    const hash = [...waiting.keys()].find((h) => req.method === 'DELETE' && (req.url ?? '').split('?')[0]!.endsWith(h));
    if (!hash) return forward();
    const notify = waiting.get(hash)!;
    waiting.delete(hash);
    notify({ answered: new Promise<void>((r) => res.once('finish', r)) });
    setTimeout(forward, HELD_MS);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    holdDeleteOf: (hash) => new Promise((r) => waiting.set(hash, r)),
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe.each(kinds)('an upload of content the sweeper is removing on %s', (kind) => {
  let server: RunningServer;
  let s3: S3Server;
  let holder: DeleteHolder;
  let token: string;
  let admin: Api;
  let bucketID: number;
  let spaceID: number;

  const upload = async (packageID: number, name: string, bytes: Buffer) => {
    const form = new FormData();
    form.append('info', JSON.stringify({ packageID, affinity: spaceID }));
    form.append('files', new Blob([bytes]), encodeURIComponent(name));
    const res = await fetch(`${server.url}/v1/object/upload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: form,
    });
    const body = (await res.json()) as any;
    expect([res.status, body?.code], JSON.stringify(body)).toEqual([200, 'OK']);
    return body.data.uploadeds[0].objectID as number;
  };
  const download = async (objectID: number) => {
    const res = await fetch(`${server.url}/v1/object/download?objectID=${objectID}`, { headers: { authorization: `Bearer ${token}` } });
    return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()) };
  };

  beforeAll(async () => {
    s3 = await startS3(['shards']);
    holder = await startDeleteHolder(s3.endpoint);
    server = await startServer(kind, { env: { ...GRACE, YUNJI_OUTBOUND_ALLOW: '127.0.0.1' } });
    token = await login(server.url);
    admin = client(server.url, token);
    bucketID = (await admin.post('/v1/bucket/create', { name: 'dedupe' })).body.data.bucket.bucketID;
    const space = await admin.post('/v1/userSpace/create', {
      name: 'late-deletes',
      storage: { type: 'MinIO', endpoint: holder.url, bucket: 'shards', region: 'us-east-1' },
      credential: { type: 'MinIO', accessKeyId: S3_CREDENTIAL.accessKeyId, secretAccessKey: S3_CREDENTIAL.secretAccessKey },
      shardStore: { maxSize: 0 },
    });
    expect(space.body?.code, JSON.stringify(space.body)).toBe('OK');
    spaceID = space.body.data.userSpace.userSpaceID;
    await waitForOutput(server, /swept unreferenced bytes/);
  });
  afterAll(async () => {
    await server?.dispose();
    await holder?.stop();
    await s3?.stop();
  });

  it.each([
    ['small content, put at its name at once', 16 * KiB],
    ['large content, streamed and then moved into place', 600 * KiB],
  ])(
    'keeps what it acknowledges (%s)',
    async (what, size) => {
      const packageID = (await admin.post('/v1/package/create', { bucketID, name: `p-${size}` })).body.data.package.packageID as number;
      const bytes = randomBytes(size);
      // Stored once, then unreferenced: the sweeper removes the shard once it is old enough.
      const first = await upload(packageID, 'first.bin', bytes);
      const removal = holder.holdDeleteOf(sha(bytes));
      expect((await admin.post('/v1/object/delete', { objectIDs: [first] })).body?.code).toBe('OK');
      // The sweep has looked at the shard, found it unused, and sent its DELETE (held back).
      const { answered } = await removal;
      const again = await upload(packageID, 'again.bin', bytes);
      await answered;
      // Whatever the sweep did meanwhile, what was acknowledged is whole, now and after later sweeps.
      for (let i = 0; i < 2; i++) {
        const got = await download(again);
        expect(got.status, `${what}: download`).toBe(200);
        expect(sha(got.bytes), `${what}: bytes`).toBe(sha(bytes));
        if (i === 0) await sleep(2500);
      }
    },
    60_000,
  );
});
