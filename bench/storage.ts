import { execFileSync } from 'node:child_process';
import { closeSync, createWriteStream, mkdtempSync, openAsBlob, openSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createPgDatabase, postgresUnavailableReason } from '../test/helpers/databases.ts';
import { loginToken, round, startYunji, type Proc } from './lib.ts';

/**
 * Issue 3's data-plane targets, side by side with `cp` on the same disk:
 * one large object up and down through /v1 on the local space (≥ 0.5× / ≥ 0.7× cp's throughput,
 * server RSS < 200 MB), and many small uploads at concurrency 16 (≥ 1,500 objects/s on SQLite).
 */
const BIG_MIB = Number(process.env.BENCH_BIG_MIB ?? 1024);
const SMALL_COUNT = Number(process.env.BENCH_SMALL_COUNT ?? 10_000);

async function setup(proc: Proc) {
  const token = await loginToken(proc.url);
  const post = async <T>(path: string, body: unknown) =>
    ((await (await fetch(proc.url + path, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })).json()) as { data: T }).data;
  const { bucketID } = (await post<{ bucket: { bucketID: number } }>('/v1/bucket/create', { name: 'bench' })).bucket;
  const { packageID } = (await post<{ package: { packageID: number } }>('/v1/package/create', { bucketID, name: 'p' })).package;
  return { token, packageID };
}

async function uploadFile(proc: Proc, token: string, packageID: number, path: string, blob: Blob): Promise<number> {
  const form = new FormData();
  form.append('info', JSON.stringify({ packageID }));
  form.append('files', blob, encodeURIComponent(path));
  const res = await fetch(`${proc.url}/v1/object/upload`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: form });
  const body = (await res.json()) as { data: { uploadeds: { objectID: number }[] } | null };
  if (res.status !== 200 || !body.data) throw new Error(`upload failed: ${res.status} ${JSON.stringify(body)}`);
  return body.data.uploadeds[0]!.objectID;
}

async function bigObject(dir: string) {
  const source = join(dir, 'big.bin');
  const fd = openSync(source, 'w');
  execFileSync('head', ['-c', `${BIG_MIB}M`, '/dev/urandom'], { stdio: ['ignore', fd, 'ignore'] });
  closeSync(fd);
  const bytes = statSync(source).size;
  const seconds = (t: number) => (performance.now() - t) / 1000;

  let t = performance.now();
  execFileSync('cp', [source, join(dir, 'copy.bin')]);
  execFileSync('sync');
  const cpSeconds = seconds(t);

  const yunji = await startYunji('', { YUNJI_DATA_DIR: join(dir, 'data') });
  try {
    const { token, packageID } = await setup(yunji);
    t = performance.now();
    const id = await uploadFile(yunji, token, packageID, 'big.bin', await openAsBlob(source));
    execFileSync('sync');
    const upSeconds = seconds(t);
    t = performance.now();
    const res = await fetch(`${yunji.url}/v1/object/download?objectID=${id}`, { headers: { authorization: `Bearer ${token}` } });
    await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), createWriteStream(join(dir, 'down.bin')));
    execFileSync('sync');
    const downSeconds = seconds(t);
    if (statSync(join(dir, 'down.bin')).size !== bytes) throw new Error('downloaded size differs');
    const mib = bytes / 1048576;
    return {
      mib,
      cpMiBps: round(mib / cpSeconds, 1),
      uploadMiBps: round(mib / upSeconds, 1),
      downloadMiBps: round(mib / downSeconds, 1),
      uploadRatio: round(cpSeconds / upSeconds),
      downloadRatio: round(cpSeconds / downSeconds),
      serverPeakRssMiB: yunji.peakRssMiB(),
    };
  } finally {
    await yunji.stop();
  }
}

async function smallObjects(databaseUrl: string) {
  const yunji = await startYunji(databaseUrl);
  try {
    const { token, packageID } = await setup(yunji);
    const payload = new Blob([Buffer.alloc(4096, 7)]);
    let next = 0;
    const t = performance.now();
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < SMALL_COUNT) {
          const i = next++;
          await uploadFile(yunji, token, packageID, `small/${i}`, payload);
        }
      }),
    );
    const seconds = (performance.now() - t) / 1000;
    return { objects: SMALL_COUNT, concurrency: 16, seconds: round(seconds), objectsPerSecond: round(SMALL_COUNT / seconds, 0), serverPeakRssMiB: yunji.peakRssMiB() };
  } finally {
    await yunji.stop();
  }
}

export async function storageBench(): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'yunji-bench-storage-'));
  try {
    const results: Record<string, unknown> = { bigObject: await bigObject(dir) };
    results.smallUploadsSqlite = await smallObjects('');
    const skip = await postgresUnavailableReason();
    if (skip) results.smallUploadsPostgres = `skipped: ${skip}`;
    else {
      const pg = await createPgDatabase();
      try {
        results.smallUploadsPostgres = await smallObjects(pg.url);
      } finally {
        await pg.drop();
      }
    }
    return results;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
