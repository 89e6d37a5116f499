import { execFileSync, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { createPgDatabase, postgresUnavailableReason } from '../test/helpers/databases.ts';
import { loginMeasured, percentile, ROOT, round, startYunji, stopChild } from './lib.ts';

/**
 * Issue 3's listing target: `listByPath` pages of 1,000 in a package of 1,000,000 objects, p99 ≤ 20 ms.
 * The objects are inserted straight into the database (1,000 folders `dNNN/` of 1,000 files each);
 * the requests go through the real server, one at a time, so each latency is a page's own cost.
 */
const OBJECTS = Number(process.env.BENCH_LIST_OBJECTS ?? 1_000_000);
const FOLDERS = 1000;

async function seed(databaseUrl: string, dataDir: string, packageId: number): Promise<number> {
  const t = performance.now();
  if (databaseUrl === '') {
    const db = new BetterSqlite3(join(dataDir, 'yunji.db'));
    db.pragma('busy_timeout = 10000');
    const space = (db.prepare('select id from user_spaces where is_default = 1').get() as { id: number }).id;
    db.prepare(
      `with recursive s(i) as (select 0 union all select i + 1 from s where i + 1 < ?)
       insert into objects (package_id, path, size, hash, space_id, redundancy, created_at, updated_at)
       select ?, printf('d%03d/file-%07d', i % ${FOLDERS}, i), 4096, upper(hex(randomblob(32))), ?, 'none', 0, 0 from s`,
    ).run(OBJECTS, packageId, space);
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.close();
  } else {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    const space = (await client.query('select id from user_spaces where is_default = 1')).rows[0].id as number;
    await client.query(
      `insert into objects (package_id, path, size, hash, space_id, redundancy, created_at, updated_at)
       select $1, 'd' || lpad((i % ${FOLDERS})::text, 3, '0') || '/file-' || lpad(i::text, 7, '0'), 4096, upper(md5(i::text) || md5((i + 1)::text)), $2, 'none', 0, 0
       from generate_series(0, $3 - 1) i`,
      [packageId, space, OBJECTS],
    );
    // A package this size would long have been vacuumed by autovacuum (which marks pages all-visible for index-only scans).
    await client.query('vacuum analyze objects');
    await client.query('checkpoint');
    await client.end();
  }
  // The seed's writes reach the disk now, not while pages are timed: a package built up over time
  // has no quarter-gigabyte of dirty pages being written back behind it.
  execFileSync('sync');
  return round((performance.now() - t) / 1000, 1);
}

/** bench/peers/list-client.py: the pages' client, one page per line asked on its stdin and answered on its stdout. */
const LIST_CLIENT = join(ROOT, 'bench', 'peers', 'list-client.py');

/** What the client tells of one page (its own clock, the server's Server-Timing, and the page's fields). */
interface ClientPage {
  ms: number;
  serverMs: number;
  code: string;
  objects: number;
  commonPrefixes: number;
  isTruncated: boolean;
  nextContinuationToken: string;
}

/** The client started on `baseUrl`: `page(query, checkWhole)` asks it for one page. */
function startListClient(baseUrl: string, token: string) {
  const child = spawn('python3', [LIST_CLIENT, baseUrl, token], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  return {
    async page(query: string, checkWhole: boolean): Promise<ClientPage> {
      child.stdin.write(`${checkWhole ? '!' : ''}${query}\n`);
      const { value, done } = await lines.next();
      if (done) throw new Error(`the list client ended: ${stderr}`);
      const page = JSON.parse(value as string) as ClientPage;
      if (page.code !== 'OK') throw new Error(`listing answered ${page.code}`);
      return page;
    },
    stop: () => stopChild(child),
  };
}

const sortedOf = (xs: number[]) => [...xs].sort((a, b) => a - b);

/** One page's time as the client saw it, and the server's own part of it. */
type PageTime = { ms: number; serverMs: number };

type Timings = { pages: number; p50: number; p99: number; max: number; serverP50: number; serverP99: number };
/**
 * Latencies as the client saw them (the target's measure), and the server's own share of each
 * (request read to first byte of the answer): where the two part, the time went to the machine's
 * other processes, the network or the client.
 */
const summary = (pages: PageTime[]): Timings => {
  const client = sortedOf(pages.map((p) => p.ms));
  const server = sortedOf(pages.map((p) => p.serverMs));
  return {
    pages: pages.length,
    p50: round(percentile(client, 50)),
    p99: round(percentile(client, 99)),
    max: round(client[client.length - 1]!),
    serverP50: round(percentile(server, 50)),
    serverP99: round(percentile(server, 99)),
  };
};

async function listingOn(databaseUrl: string) {
  const yunji = await startYunji(databaseUrl);
  let client: ReturnType<typeof startListClient> | undefined;
  try {
    const { token, loginPeakRssMiB } = await loginMeasured(yunji);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the bench reads the spec's fields by name
    type Data = any;
    const call = async (path: string, body?: unknown): Promise<Data> => {
      const res = await fetch(yunji.url + path, {
        method: body ? 'POST' : 'GET',
        headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      return ((await res.json()) as { data: Data }).data;
    };
    const { bucketID } = (await call('/v1/bucket/create', { name: 'list' })).bucket;
    const { packageID } = (await call('/v1/package/create', { bucketID, name: 'million' })).package;
    const seedSeconds = await seed(databaseUrl, yunji.dataDir, packageID);

    // The pages are read by a client of their own (see list-client.py): this process's collector,
    // run for the external memory of the bodies fetch gave it, stopped it for 2–11 ms every eight
    // pages or so, and those stops were most of the slow pages. Every 50th page is also parsed whole.
    const pages = (client = startListClient(yunji.url, token));
    let pagesRead = 0;
    const page = async (query: string) => {
      const { ms, serverMs, ...data } = await pages.page(`packageID=${packageID}&maxKeys=1000&${query}`, pagesRead++ % 50 === 0);
      return { ms, serverMs, data };
    };
    // Warm up the server's caches the way a running server would have them.
    for (let i = 0; i < 20; i++) await page('path=&isPrefix=true');

    // 1. The whole package, page after page (1,000 pages of 1,000).
    const whole: PageTime[] = [];
    let token2 = '';
    let listed = 0;
    do {
      const { data, ...times } = await page(`path=&isPrefix=true${token2 ? `&continuationToken=${encodeURIComponent(token2)}` : ''}`);
      whole.push(times);
      listed += data.objects;
      token2 = data.isTruncated ? data.nextContinuationToken : '';
    } while (token2);
    if (listed !== OBJECTS) throw new Error(`listed ${listed} of ${OBJECTS}`);

    // 2. One folder's 1,000 files, for random folders.
    const folders: PageTime[] = [];
    for (let i = 0; i < 300; i++) {
      const folder = `d${String(Math.floor(Math.random() * FOLDERS)).padStart(3, '0')}/`;
      const { data, ...times } = await page(`path=${folder}&isPrefix=true`);
      if (data.objects !== Math.min(1000, OBJECTS / FOLDERS)) throw new Error(`folder ${folder}: ${data.objects}`);
      folders.push(times);
    }

    // 3. The top level folded into commonPrefixes (1,000 folders in one page: one index seek per folder).
    const top: PageTime[] = [];
    for (let i = 0; i < 100; i++) {
      const { data, ...times } = await page('path=&isPrefix=true&noRecursive=true');
      if (data.commonPrefixes !== FOLDERS) throw new Error(`top level: ${data.commonPrefixes}`);
      top.push(times);
    }
    return {
      objects: OBJECTS,
      seedSeconds,
      wholePackage: summary(whole),
      oneFolder: summary(folders),
      topLevelFolded: summary(top),
      serverPeakRssMiB: yunji.peakRssMiB(),
      loginPeakRssMiB,
    };
  } finally {
    await client?.stop();
    await yunji.stop();
  }
}

export async function listingBench(): Promise<Record<string, unknown>> {
  const results: Record<string, unknown> = { sqlite: await listingOn('') };
  const skip = await postgresUnavailableReason();
  if (skip) results.postgres = `skipped: ${skip}`;
  else {
    const db = await createPgDatabase();
    try {
      results.postgres = await listingOn(db.url);
    } finally {
      await db.drop();
    }
  }
  return results;
}
