import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { client, login, nativeOffRun, type RunningServer, startServer, waitForOutput } from '../helpers/server.ts';

const kinds = await databaseKinds();
const MiB = 1024 * 1024;
/**
 * Unreferenced bytes go at once, but a killed process's writes keep the sweeper off until its
 * fence expires (3 s here), so what it left goes at a sweep after that (one every second).
 */
const SWEEP = { YUNJI_SHARD_GRACE: '0', YUNJI_SWEEP_FENCE: '3', YUNJI_SWEEP_INTERVAL: '1' };

/**
 * Deterministic content of any size without holding it: chunk i is a fixed random MiB with i
 * written over its first 8 bytes, so every chunk differs and any range can be recomputed.
 */
const BLOCK = randomBytes(MiB);
function chunk(i: number): Buffer {
  const b = Buffer.from(BLOCK);
  b.writeBigUInt64BE(BigInt(i), 0);
  return b;
}
function expectedRange(start: number, end: number): Buffer {
  const parts: Buffer[] = [];
  for (let i = Math.floor(start / MiB); i * MiB <= end; i++) {
    const c = chunk(i);
    parts.push(c.subarray(Math.max(0, start - i * MiB), Math.min(MiB, end - i * MiB + 1)));
  }
  return Buffer.concat(parts);
}

/** A multipart/form-data upload body streamed from the generator, with `info` first; `pace` slows it down. */
function streamingUpload(info: unknown, path: string, totalMiB: number, pace?: () => Promise<void>) {
  const boundary = `yunji${randomBytes(8).toString('hex')}`;
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="info"\r\n\r\n${JSON.stringify(info)}\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="files"; filename="${encodeURIComponent(path)}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const hash = createHash('sha256');
  let i = -1;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (i === -1) controller.enqueue(head);
      else if (i < totalMiB) {
        if (pace) await pace();
        const c = chunk(i);
        hash.update(c);
        controller.enqueue(c);
      } else {
        controller.enqueue(tail);
        controller.close();
      }
      i++;
    },
  });
  let digest: string | undefined;
  return { body, contentType: `multipart/form-data; boundary=${boundary}`, digest: () => (digest ??= hash.digest('hex').toUpperCase()) };
}

function filesIn(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesIn(join(dir, e.name)) : [join(dir, e.name)]));
}

describe.each(kinds)('storage durability on %s', (kind) => {
  let server: RunningServer;
  let earlier: RunningServer[] = [];
  let token: string;
  let admin: ReturnType<typeof client>;
  let packageID: number;
  const space = () => join(server.dataDir, 'spaces', 'tenant-1', '.yunji');

  const restart = async (how: 'SIGKILL' | 'SIGTERM') => {
    if (how === 'SIGKILL') server.proc.kill('SIGKILL');
    await server.stop();
    earlier.push(server);
    server = await startServer(kind, { dataDir: server.dataDir, databaseUrl: server.databaseUrl, env: SWEEP });
    await waitForOutput(server, /swept unreferenced bytes/);
    admin = client(server.url, token);
  };

  beforeAll(async () => {
    server = await startServer(kind, { env: SWEEP });
    token = await login(server.url);
    admin = client(server.url, token);
    const bucketID = (await admin.post('/v1/bucket/create', { name: 'durable' })).body.data.bucket.bucketID;
    packageID = (await admin.post('/v1/package/create', { bucketID, name: 'p' })).body.data.package.packageID;
  });
  afterAll(async () => {
    await server?.stop();
    // The first process owns the data dir and database; it cleans up last.
    for (const s of earlier.reverse()) await s.dispose();
    if (earlier.length === 0) await server?.dispose();
    earlier = [];
  });

  it.skipIf(nativeOffRun)(
    'streams a 2 GiB+ upload and serves it back byte for byte, whole and in ranges',
    async () => {
      const totalMiB = 2050; // past 2^31 bytes, where 32-bit offsets would break
      const up = streamingUpload({ packageID }, 'huge.bin', totalMiB);
      const res = await fetch(`${server.url}/v1/object/upload`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': up.contentType },
        body: up.body,
        duplex: 'half',
      } as RequestInit);
      const body = (await res.json()) as any;
      expect([res.status, body.code]).toEqual([200, 'OK']);
      const object = body.data.uploadeds[0];
      expect(object).toMatchObject({ path: 'huge.bin', size: String(totalMiB * MiB), fileHash: `Full${up.digest()}` });

      const whole = await fetch(`${server.url}/v1/object/download?objectID=${object.objectID}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(whole.headers.get('content-length')).toBe(String(totalMiB * MiB));
      const hash = createHash('sha256');
      let received = 0;
      for await (const part of whole.body as unknown as AsyncIterable<Uint8Array>) {
        hash.update(part);
        received += part.length;
      }
      expect([received, hash.digest('hex').toUpperCase()]).toEqual([totalMiB * MiB, up.digest()]);

      const size = totalMiB * MiB;
      for (const [start, end] of [
        [0, 99],
        [MiB - 5, MiB + 4],
        [2 ** 31 - 3, 2 ** 31 + 2],
        [size - 1000, size - 1],
        [1234567890, 1234567890 + 3 * MiB],
      ] as const) {
        const ranged = await fetch(`${server.url}/v1/object/download?objectID=${object.objectID}`, {
          headers: { authorization: `Bearer ${token}`, range: `bytes=${start}-${end}` },
        });
        expect(ranged.status).toBe(206);
        expect(Buffer.from(await ranged.arrayBuffer()).equals(expectedRange(start, end)), `${start}-${end}`).toBe(true);
        const sliced = await fetch(
          `${server.url}/v1/object/download?objectID=${object.objectID}&offset=${start}&length=${end - start + 1}`,
          { headers: { authorization: `Bearer ${token}` } },
        );
        expect(Buffer.from(await sliced.arrayBuffer()).equals(expectedRange(start, end)), `offset ${start}`).toBe(true);
      }
      await admin.post('/v1/object/delete', { objectIDs: [object.objectID] });
    },
    300_000,
  );

  it('kill -9 during an upload: after restart nothing of it is visible and its bytes are gone', async () => {
    const before = new Set(filesIn(join(space(), 'shards')));
    // A slow upload: the server is killed once some of it is on disk.
    const up = streamingUpload({ packageID }, 'interrupted.bin', 4096, () => new Promise((r) => setTimeout(r, 2)));
    const request = fetch(`${server.url}/v1/object/upload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': up.contentType },
      body: up.body,
      duplex: 'half',
    } as RequestInit).catch((err: unknown) => err);
    // A shard being written lives under tmp/ until it is complete.
    await waitUntil(() => filesIn(join(space(), 'tmp')).some((f) => statSync(f).size > 8 * MiB));
    await restart('SIGKILL');
    expect(await request).toBeInstanceOf(Error);

    const objects = (await admin.get(`/v1/object/getPackageObjects?packageID=${packageID}`)).body.data.objects;
    expect(objects.map((o: any) => o.path)).not.toContain('interrupted.bin');
    const left = () => [
      ...filesIn(join(space(), 'partial')),
      ...filesIn(join(space(), 'tmp')),
      ...filesIn(join(space(), 'shards')).filter((f) => !before.has(f)),
    ];
    await waitUntil(() => left().length === 0);
  }, 120_000);

  it('kill -9 during a multipart complete: the upload stays unfinished and can be completed after restart', async () => {
    const created = await admin.post('/v1/object/newMultipartUpload', { packageID, path: 'joined.bin' });
    const objectID = created.body.data.object.objectID;
    const parts = [randomBytes(96 * MiB), randomBytes(96 * MiB), randomBytes(96 * MiB)];
    for (const [index, content] of parts.entries()) {
      const form = new FormData();
      form.append('info', JSON.stringify({ objectID, index }));
      form.append('file', new Blob([content]), 'part');
      const r = await fetch(`${server.url}/v1/object/uploadPart`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
        body: form,
      });
      expect(r.status).toBe(200);
    }
    const completing = admin.post('/v1/object/completeMultipartUpload', { objectID, indexes: [2, 0, 1, 0] }).catch((err: unknown) => err);
    await waitUntil(() => filesIn(join(space(), 'tmp')).some((f) => statSync(f).size > 16 * MiB));
    await restart('SIGKILL');
    expect(await completing).toBeInstanceOf(Error);

    const listed = (await admin.get(`/v1/object/getPackageObjects?packageID=${packageID}`)).body.data.objects.find(
      (o: any) => o.objectID === objectID,
    );
    expect(listed).toMatchObject({ size: '0', redundancy: { type: 'multipartUpload' } });
    await waitUntil(() => filesIn(join(space(), 'partial')).length === 0 && filesIn(join(space(), 'tmp')).length === 0);

    const done = await admin.post('/v1/object/completeMultipartUpload', { objectID, indexes: [2, 0, 1, 0] });
    expect(done.status).toBe(200);
    const joined = Buffer.concat([parts[2]!, parts[0]!, parts[1]!, parts[0]!]);
    expect(done.body.data.object).toMatchObject({
      size: String(joined.length),
      fileHash: `Full${createHash('sha256').update(joined).digest('hex').toUpperCase()}`,
      redundancy: { type: 'none' },
    });
    // The parts' own bytes go at the next sweep; the joined object stays whole.
    await restart('SIGTERM');
    const shardNames = filesIn(join(space(), 'shards')).map((f) => f.slice(f.lastIndexOf('/') + 1));
    for (const part of parts) expect(shardNames).not.toContain(createHash('sha256').update(part).digest('hex').toUpperCase());
    const back = await fetch(`${server.url}/v1/object/download?objectID=${objectID}`, { headers: { authorization: `Bearer ${token}` } });
    expect(Buffer.from(await back.arrayBuffer()).equals(joined)).toBe(true);
  }, 180_000);
});

async function waitUntil(condition: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for the condition');
    await new Promise((r) => setTimeout(r, 5));
  }
}
