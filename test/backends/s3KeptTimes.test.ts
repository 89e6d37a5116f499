import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '@aws-sdk/client-s3';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import type { BackendEntry } from '../../src/backends/backend.ts';
import { keptTimesLocation } from '../../src/backends/keptTimes.ts';
import { keptTimesIn } from '../../src/spaces/s3ObjectTimes.ts';
import { S3Backend } from '../../src/backends/s3Backend.ts';
import { s3Network } from '../../src/spaces/storageConfig.ts';
import { databaseKinds } from '../helpers/databases.ts';
import { openTestRuntime } from '../helpers/runtime.ts';
import { S3_CREDENTIAL, startS3Process, type S3Server } from '../helpers/s3.ts';
import { s3Client, s3Put, startThrottledProxy, type ThrottledProxy } from '../helpers/sync.ts';

const kinds = await databaseKinds();

/**
 * The S3 backend records the file time of what it writes (src/backends/keptTimes.ts), so that its
 * listings give those times without a HEAD per object, and only where the bytes are still the ones
 * it wrote. Against s3rver, through a proxy that counts the requests, on both databases.
 */
describe.each(kinds)('S3 listings with recorded file times on %s', (kind) => {
  let rt: Awaited<ReturnType<typeof openTestRuntime>>;
  let s3: S3Server;
  let sdk: S3Client;
  let proxy: ThrottledProxy;
  let backend: S3Backend;
  const bucket = 'kept';

  const list = async (prefix: string) => {
    const out: BackendEntry[] = [];
    for await (const e of backend.list(prefix)) out.push(e);
    return out;
  };
  const recorded = (after: string, upTo: string) =>
    keptTimesIn(rt.core.db, keptTimesLocation(proxy.url, bucket)).between({ from: after, upTo });

  beforeAll(async () => {
    // s3rver (behind the proxy) listens on loopback, which the operator must allow.
    rt = await openTestRuntime(kind, { YUNJI_OUTBOUND_ALLOW: '127.0.0.1' });
    s3 = await startS3Process([bucket]);
    sdk = s3Client(s3.endpoint);
    proxy = await startThrottledProxy(s3.endpoint);
    const location = { endpoint: proxy.url, region: 'us-east-1', bucket, forcePathStyle: true, ...S3_CREDENTIAL };
    backend = new S3Backend(location, s3Network(rt.core.config), keptTimesIn(rt.core.db, keptTimesLocation(location.endpoint, bucket)));
  });
  afterAll(async () => {
    backend?.close();
    sdk?.destroy();
    await proxy?.stop();
    await s3?.stop();
    await rt?.dispose();
  });

  it('lists the times it wrote without a HEAD each, and HEADs only what changed behind its back', async () => {
    const mtime = (i: number) => Date.parse('2022-02-02T02:02:02.000Z') + i * 1000 + 123;
    // Small files go as one PUT, a larger stream through the multipart uploader: both are recorded.
    for (let i = 0; i < 30; i++) await backend.put(`d/f${String(i).padStart(2, '0')}`, Buffer.from(`file ${i}`), { mtimeMs: mtime(i) });
    const { Readable } = await import('node:stream');
    await backend.put('d/zbig', Readable.from([Buffer.alloc(3 * 1024 * 1024, 7), Buffer.alloc(1024 * 1024, 8)]), { mtimeMs: mtime(99) });
    // Written without a time (as the shard store writes): nothing recorded, the listing says so.
    await backend.put('d/untimed', Buffer.from('no time'));

    proxy.resetRequests();
    const entries = await list('d');
    const byKey = new Map(entries.map((e) => [e.key, e]));
    expect(entries).toHaveLength(32);
    for (let i = 0; i < 30; i++) {
      expect(byKey.get(`d/f${String(i).padStart(2, '0')}`), `f${i}`).toEqual({
        key: `d/f${String(i).padStart(2, '0')}`,
        size: `file ${i}`.length,
        mtimeMs: mtime(i),
      });
    }
    expect(byKey.get('d/zbig')).toEqual({ key: 'd/zbig', size: 4 * 1024 * 1024, mtimeMs: mtime(99) });
    expect(byKey.get('d/untimed')?.approximateTime).toBe(true);
    // One HEAD: whether 'd' itself is an object; none per file.
    expect(proxy.requests(), 'requests of the listing').toEqual({ HEAD: 1, GET: 1 });

    // Changed by another client (other bytes, the same size): the record no longer applies.
    await s3Put(sdk, bucket, 'd/f03', Buffer.from('FILE 3'));
    const f03 = (await list('d')).find((e) => e.key === 'd/f03')!;
    expect(f03.approximateTime, 'an object rewritten behind its back').toBe(true);
    expect(f03.mtimeMs).not.toBe(mtime(3));
    // Its own time is still read from the object itself, as before (no kept time in its metadata: the upload time).
    expect((await backend.stat('d/f03'))?.mtimeMs).toBe(f03.mtimeMs);

    // Rewritten by Yunji with a new time: recorded again.
    await backend.put('d/f03', Buffer.from('file 3 again'), { mtimeMs: mtime(1000) });
    expect((await list('d')).find((e) => e.key === 'd/f03')).toEqual({ key: 'd/f03', size: 12, mtimeMs: mtime(1000) });
  });

  it('drops the records of objects that are gone, whoever removed them', async () => {
    for (const k of ['g/a', 'g/b', 'g/c']) await backend.put(k, Buffer.from(k), { mtimeMs: 1_600_000_000_000 });
    expect([...(await recorded('g/', 'g/\uffff')).keys()]).toEqual(['g/a', 'g/b', 'g/c']);
    await backend.remove('g/a');
    expect([...(await recorded('g/', 'g/\uffff')).keys()], 'removed through the backend').toEqual(['g/b', 'g/c']);
    // Removed by another client: the next listing that covers the key drops its record.
    await sdk.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'g/b' }));
    expect((await list('g')).map((e) => e.key)).toEqual(['g/c']);
    expect([...(await recorded('g/', 'g/\uffff')).keys()], 'removed behind its back').toEqual(['g/c']);
  });

  it('pages of a large listing each find their records (more than one page of 1,000)', async () => {
    const n = 1205;
    const keys = Array.from({ length: n }, (_, i) => `p/${String(i).padStart(5, '0')}`);
    for (let i = 0; i < n; i += 50)
      await Promise.all(keys.slice(i, i + 50).map((k, j) => backend.put(k, Buffer.from(k), { mtimeMs: 1_700_000_000_000 + i + j })));
    proxy.resetRequests();
    const entries = await list('p');
    expect(entries.map((e) => e.key)).toEqual(keys);
    expect(entries.filter((e) => e.approximateTime)).toEqual([]);
    expect(entries.map((e) => e.mtimeMs)).toEqual(keys.map((_, i) => 1_700_000_000_000 + i));
    expect(proxy.requests()).toEqual({ HEAD: 1, GET: 2 });
  });
});
