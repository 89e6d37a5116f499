import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { S3_CREDENTIAL } from './s3.ts';
import type { client } from './server.ts';

/** Helpers for the space sync tests: file trees, S3 reads and writes, job polling, a throttling S3 proxy. */

export type Api = ReturnType<typeof client>;

export const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Writes `files` (relative path → content) under `dir`, with `mtimeMs` when given (one time for all, or per path). */
export function writeTree(dir: string, files: Record<string, Buffer | string>, mtimeMs?: number | Record<string, number>): void {
  for (const [rel, content] of Object.entries(files)) {
    const path = join(dir, rel);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, content);
    const t = typeof mtimeMs === 'number' ? mtimeMs : mtimeMs?.[rel];
    if (t !== undefined) utimesSync(path, new Date(t), new Date(t));
  }
}

/** Every file under `dir`, relative with `/`, sorted by code unit (empty when `dir` is absent). */
export function filesUnder(dir: string, prefix = ''): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name), `${prefix}${e.name}/`) : [`${prefix}${e.name}`]))
    .sort();
}

/** Every directory under `dir` that holds nothing, relative. */
export function emptyDirsUnder(dir: string, prefix = ''): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .flatMap((e) => {
      const sub = join(dir, e.name);
      return readdirSync(sub).length === 0 ? [`${prefix}${e.name}`] : emptyDirsUnder(sub, `${prefix}${e.name}/`);
    })
    .sort();
}

/** The first difference between two trees (content or, when `mtime`, modification time beyond 1 ms), or undefined. */
export function treeDifference(src: string, dst: string, opts: { mtime?: boolean; only?: string[] } = {}): string | undefined {
  const want = opts.only ?? filesUnder(src);
  const got = filesUnder(dst);
  if (JSON.stringify(got) !== JSON.stringify([...want].sort()))
    return `files differ: want ${JSON.stringify([...want].sort())}, got ${JSON.stringify(got)}`;
  for (const rel of want) {
    const a = readFileSync(join(src, rel));
    const b = readFileSync(join(dst, rel));
    if (!a.equals(b)) return `${rel}: content differs (${a.length} vs ${b.length} bytes)`;
    if (opts.mtime) {
      const ta = statSync(join(src, rel)).mtimeMs;
      const tb = statSync(join(dst, rel)).mtimeMs;
      if (Math.abs(ta - tb) > 1)
        return `${rel}: mtime ${new Date(tb).toISOString()} (${tb}) is not the source's ${new Date(ta).toISOString()} (${ta})`;
    }
  }
  return undefined;
}

// ---- S3 (s3rver) seen directly, as a client would ----

export function s3Client(endpoint: string): S3Client {
  return new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { ...S3_CREDENTIAL } });
  // A copy: the SDK marks the credentials object it is given (a `$source` field).
}

export async function s3Keys(s3: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of page.Contents ?? []) keys.push(o.Key!);
    token = page.NextContinuationToken;
  } while (token);
  return keys.sort();
}

export async function s3Get(s3: S3Client, bucket: string, key: string): Promise<Buffer> {
  const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await res.Body!.transformToByteArray());
}

export async function s3Put(s3: S3Client, bucket: string, key: string, body: Buffer): Promise<void> {
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentLength: body.length }));
}

// ---- jobs ----

export const TERMINAL_STATUSES = ['succeeded', 'failed', 'cancelled'];
export const referenceOf = (taskID: number) => `spaceSyncTask:${taskID}`;

/** Polls `probe` until it returns something other than undefined; fails after `timeoutMs` with `what` and the last value seen. */
export async function until<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 30_000,
  describeLast?: () => string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${describeLast ? `; last seen: ${describeLast()}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** GET /api/jobs/{id} until the job is terminal; the platform job. */
export async function waitForJob(api: Api, jobID: number, timeoutMs = 30_000): Promise<any> {
  let last: unknown;
  return until(
    `job ${jobID} to end`,
    async () => {
      const res = await api.get(`/api/jobs/${jobID}`);
      if (res.status !== 200) throw new Error(`GET /api/jobs/${jobID}: ${res.status} ${res.text}`);
      last = res.body;
      return TERMINAL_STATUSES.includes(res.body.status) ? res.body : undefined;
    },
    timeoutMs,
    () => JSON.stringify(last),
  );
}

/**
 * Makes local user spaces through the API, each in a new folder `space-<n>` under `roots` (which
 * the server must allow in YUNJI_LOCAL_ROOTS); `over` overrides fields of the create body.
 */
export function localSpaceMaker(api: Api, roots: string): (over?: Record<string, unknown>) => Promise<{ id: number; root: string }> {
  let count = 0;
  return async (over = {}) => {
    const name = `space-${++count}`;
    const root = join(roots, name);
    mkdirSync(root, { recursive: true });
    const res = await api.post('/v1/userSpace/create', { name, storage: { type: 'local', root }, shardStore: null, ...over });
    if (res.body?.code !== 'OK') throw new Error(`POST /v1/userSpace/create: ${res.status} ${res.text}`);
    return { id: res.body.data.userSpace.userSpaceID as number, root };
  };
}

/** The space_sync jobs of one task, newest first. */
export async function jobsOfTask(api: Api, taskID: number): Promise<any[]> {
  const res = await api.get('/api/jobs?action=space_sync&page_size=200');
  if (res.status !== 200) throw new Error(`GET /api/jobs: ${res.status} ${res.text}`);
  return (res.body.items as any[]).filter((j) => j.reference_id === referenceOf(taskID));
}

/** Watches `probe` for `ms` (a window of observation, not an assertion on time); returns every value seen. */
export async function observe<T>(ms: number, probe: () => Promise<T>): Promise<T[]> {
  const seen: T[] = [];
  const end = Date.now() + ms;
  while (Date.now() < end) {
    seen.push(await probe());
    await new Promise((r) => setTimeout(r, 100));
  }
  seen.push(await probe());
  return seen;
}

// ---- a throttling proxy in front of an S3 server ----

export interface ThrottledProxy {
  url: string;
  /** Bytes per second of each object download; 0: no limit. */
  setRate(bytesPerSecond: number): void;
  /** Requests passed on since the last reset, by method. */
  requests(): Record<string, number>;
  resetRequests(): void;
  stop(): Promise<void>;
}

class Throttle extends Transform {
  constructor(private readonly rate: () => number) {
    super({ highWaterMark: 16 * 1024 });
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const rate = this.rate();
    if (rate <= 0) return done(null, chunk);
    const piece = 16 * 1024;
    const parts: Buffer[] = [];
    for (let i = 0; i < chunk.length; i += piece) parts.push(chunk.subarray(i, i + piece));
    const next = () => {
      const p = parts.shift();
      if (!p) return done();
      setTimeout(
        () => {
          if (this.destroyed) return;
          this.push(p);
          next();
        },
        (p.length / rate) * 1000,
      );
    };
    next();
  }
}

/**
 * An HTTP proxy to `target` that slows object downloads (non-XML GET bodies) to a set rate, so a
 * sync reading from it takes long enough to be cancelled half way, and counts the requests.
 */
export async function startThrottledProxy(target: string): Promise<ThrottledProxy> {
  let rate = 0;
  let counts: Record<string, number> = {};
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    counts[req.method ?? '?'] = (counts[req.method ?? '?'] ?? 0) + 1;
    const upstream = httpRequest(target + req.url, { method: req.method, headers: req.headers }, (up: IncomingMessage) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      const xml = String(up.headers['content-type'] ?? '').includes('xml');
      if (req.method === 'GET' && !xml && rate > 0) {
        const throttle = new Throttle(() => rate);
        res.on('close', () => throttle.destroy());
        up.pipe(throttle).pipe(res);
      } else up.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    setRate: (r) => {
      rate = r;
    },
    requests: () => ({ ...counts }),
    resetRequests: () => {
      counts = {};
    },
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
