import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { call, newTenantClient, startServer, type RunningServer } from '../helpers/server.ts';
import { TERMINAL_STATUSES, until, type Api } from '../helpers/sync.ts';

const kinds = await databaseKinds();
const MB = 1024 * 1024;
/** About what the tenant's manifests send: a little under the 256 MiB read at most. */
const HUGE = 250 * MB;

/** Writes `HUGE` bytes made by `piece` (called until enough), between `head` and `tail`, minding back-pressure. */
async function streamOut(res: ServerResponse, head: string, piece: (i: number) => string, tail: string): Promise<void> {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.write(head);
  let sent = head.length;
  let i = 0;
  while (sent < HUGE && !res.destroyed) {
    let block = '';
    while (block.length < MB) block += piece(i++);
    sent += block.length;
    if (!res.write(block)) await Promise.race([once(res, 'drain'), once(res, 'close')]);
  }
  if (!res.destroyed) res.end(tail);
}

/**
 * A tenant's `http_manifest` cannot exhaust the server's memory: the manifest is read as it
 * arrives, and refused at its entry limit or at an entry too large, whatever its size. The server
 * runs with a 256 MB heap; a manifest of ~250 MB read whole and parsed kills it.
 */
describe.each(kinds)('huge http_manifest sources on %s', (kind) => {
  let server: RunningServer;
  let web: Server;
  let webUrl: string;
  let attacker: Api;
  let bucketID: number;
  const small = Buffer.from('a small file, synced as usual');

  beforeAll(async () => {
    web = createServer((req, res) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      res.on('error', () => {});
      if (path === '/many.json') {
        // Many small entries: the 1,000,001st arrives after ~30 MB.
        void streamOut(res, '[', (i) => `${i === 0 ? '' : ','}{"path":"f/${i}","url":"u"}`, ']');
      } else if (path === '/giant.json') {
        // One entry whose url is one string of ~250 MB.
        void streamOut(res, '[{"path":"giant.bin","url":"', () => 'x'.repeat(64 * 1024), '"}]');
      } else if (path === '/giant-member.json') {
        // Another member of the object, as large.
        void streamOut(res, '{"files":[],"comment":"', () => 'y'.repeat(64 * 1024), '"}');
      } else if (path === '/small.json') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({ files: [{ path: 'small.txt', url: 'small.txt', sha256: createHash('sha256').update(small).digest('hex') }] }),
        );
      } else if (path === '/small.txt') res.end(small);
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', () => r()));
    webUrl = `http://127.0.0.1:${(web.address() as AddressInfo).port}`;
    server = await startServer(kind, {
      env: { NODE_OPTIONS: '--max-old-space-size=256', YUNJI_OUTBOUND_ALLOW: '127.0.0.1', YUNJI_JOB_POLL: '100' },
    });
    attacker = await newTenantClient(server.url, 'Manifest attacker');
    const bucket = await attacker.post('/v1/bucket/create', { name: 'manifests' });
    expect(bucket.body?.code, bucket.text).toBe('OK');
    bucketID = bucket.body.data.bucket.bucketID;
  });
  afterAll(async () => {
    await server?.dispose();
    web?.closeAllConnections();
    await new Promise<void>((r) => (web ? web.close(() => r()) : r()));
  });

  let sources = 0;
  /** Syncs a new source of `url` to its end, checking all along that the server answers. */
  const syncManifest = async (path: string) => {
    const name = `m${++sources}`;
    const pkg = await attacker.post('/v1/package/create', { bucketID, name });
    expect(pkg.body?.code, pkg.text).toBe('OK');
    const packageID = pkg.body.data.package.packageID as number;
    const source = await attacker.post('/api/sync/sources', {
      name,
      type: 'http_manifest',
      config: { url: `${webUrl}${path}` },
      package_id: packageID,
    });
    expect(source.status, source.text).toBe(201);
    const started = await attacker.post('/api/sync/jobs', { source: name });
    expect(started.status, started.text).toBe(200);
    const job = await until(
      `the sync of ${path} to end`,
      async () => {
        const health = await call(server.url, 'GET', '/healthz').catch((err: Error) => {
          throw new Error(`/healthz: ${err.message}; exit code ${server.proc.exitCode}; the server said:\n${server.output().slice(-3000)}`);
        });
        expect(health.status).toBe(200);
        const res = await attacker.get(`/api/sync/jobs/${started.body.id}`);
        expect(res.status, res.text).toBe(200);
        return TERMINAL_STATUSES.includes(res.body.status) ? res.body : undefined;
      },
      240_000,
    );
    const objects = await attacker.get(`/v1/object/listByPath?packageID=${packageID}&isPrefix=true`);
    expect(objects.body?.code, objects.text).toBe('OK');
    return { job, paths: (objects.body.data.objects as { path: string }[]).map((o) => o.path) };
  };

  it('refuses a manifest of millions of entries at the entry limit, and stays up', async () => {
    const { job, paths } = await syncManifest('/many.json');
    expect(job, JSON.stringify(job).slice(0, 2000)).toMatchObject({ status: 'failed', attempts: 1 });
    expect(job.error_message).toMatch(/lists more than 1000000 files/);
    expect(paths).toEqual([]);
  }, 300_000);

  it('refuses a manifest entry of ~250 MB at the entry size limit, and stays up', async () => {
    const { job, paths } = await syncManifest('/giant.json');
    expect(job, JSON.stringify(job).slice(0, 2000)).toMatchObject({ status: 'failed', attempts: 1 });
    expect(job.error_message).toMatch(/entry 1 of the manifest at .* is larger than 65536 bytes/);
    expect(paths).toEqual([]);
  }, 300_000);

  it('refuses another member of ~250 MB beside "files", and stays up', async () => {
    const { job } = await syncManifest('/giant-member.json');
    expect(job, JSON.stringify(job).slice(0, 2000)).toMatchObject({ status: 'failed', attempts: 1 });
    expect(job.error_message).toMatch(/member "comment" of the manifest at .* is larger than 65536 bytes/);
  }, 300_000);

  it('still syncs a small manifest', async () => {
    const { job, paths } = await syncManifest('/small.json');
    expect(job, JSON.stringify(job).slice(0, 2000)).toMatchObject({ status: 'succeeded' });
    expect(paths).toEqual(['small.txt']);
  });
});
