import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { S3_CREDENTIAL } from '../test/helpers/s3.ts';
import { cpuSecondsOf, freePort, loginToken, median, ROOT, round, startYunji, stopChild, type Proc } from './lib.ts';

/**
 * The sync engine (docs/SYNC.md) against rclone, in the same run, one tool at a time:
 * `BENCH_SYNC_FILES` (default 10,000) files of 1–64 KiB (sizes and content from a seeded PRNG, so
 * every run syncs the same tree) in 100 folders, copied
 * - local space → local space (same disk), and
 * - local space → an S3-compatible server (s3rver, its own process on 127.0.0.1; Yunji and rclone
 *   each get their own bucket per round).
 *
 * For each tool: the first sync into an empty destination (a new folder each round, all removed
 * after the last round; a new bucket each round on S3) and a no-change re-sync, wall time; the
 * disk is flushed (`sync`, not timed) before each, and the time of a `sync` right after is reported
 * too (`secondsWithSync`), since the tools need not flush what they write. Peak RSS: Yunji's server
 * process, its peak reset before each run (`/proc/<pid>/clear_refs` 5) and read after (VmHWM),
 * beside its resident size just before (`idleRssMiB`); rclone's whole process (`/usr/bin/time -v`).
 * CPU seconds of each process (and of s3rver) are recorded too, and the load average after each
 * run: the machine has two cores, and anything else running on them shows in the times.
 *
 * Yunji: the real server (`startYunji`, YUNJI_LOCAL_ROOTS = the bench's directory), a Manual
 * `Diff` task (size and modification time, as rclone compares), run with `runTask` and timed from
 * that request until `GET /api/jobs/{id}` (polled every 20 ms) shows it terminal. rclone (Debian's)
 * runs `rclone sync` with its defaults (4 transfers, 8 checkers) and with Yunji's (8, 16), with an
 * empty configuration (`--config /dev/null`, the S3 remote from environment variables only).
 * Every destination is checked against the source after each run (every file's size, sampled
 * content, nothing rewritten by a re-sync), and Yunji's job stats against what it should have done.
 *
 * Peers are measured in rounds (`BENCH_ROUNDS`, default 3, local; `BENCH_SYNC_S3_ROUNDS`, default
 * 1, S3), the order rotating each round; ratios are the median of the per-round ratios.
 * `BENCH_SYNC_TOOLS` (comma-separated, default `yunji,yunji-portable,rclone,rclone816`) limits the
 * tools run. `yunji-portable` is a second Yunji server with `YUNJI_NATIVE=off` (its local file work
 * in pure Node), syncing the same source beside the native one; `portableOverNative` is its median
 * per-round ratio to `yunji`.
 */
const FILES = Number(process.env.BENCH_SYNC_FILES ?? 10_000);
const FOLDERS = 100;
const MIN_SIZE = 1024;
const MAX_SIZE = 64 * 1024;
const SEED = 20261123;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const S3_ROUNDS = Number(process.env.BENCH_SYNC_S3_ROUNDS ?? 1);
const TOOLS = benchSyncTools('yunji,yunji-portable,rclone,rclone816');
/** The Yunji servers a run may start: the native module where it was built, and pure Node. */
const YUNJI_SIDES = { yunji: {}, 'yunji-portable': { YUNJI_NATIVE: 'off' } } as const;
type YunjiSide = keyof typeof YUNJI_SIDES;
const RCLONE_REMOTE = 'BENCHS3';
const S3_REGION = 'us-east-1';

/** The tools `BENCH_SYNC_TOOLS` (comma-separated) names, or `defaults`. */
export function benchSyncTools(defaults: string): string[] {
  return (process.env.BENCH_SYNC_TOOLS ?? defaults).split(',').map((t) => t.trim());
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Waits (not timed) until the clock reaches `at`, when given. */
const waitUntil = async (at: number | undefined) => {
  if (at !== undefined && Date.now() < at) await sleep(at - Date.now());
};
export const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** A small, fast, seeded PRNG (mulberry32): the same sequence every run. */
export function prng(seed: number): () => number {
  let s = seed | 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Dataset {
  /** The folder synced (`src` of the source space). */
  dir: string;
  /** Relative path → size. */
  files: Map<string, number>;
  bytes: number;
}

/** Content of file `i`: a slice of a seeded pool, its index in the first 4 bytes (so every file differs). */
async function makeDataset(dir: string): Promise<Dataset> {
  const rand = prng(SEED);
  const pool = Buffer.alloc(2 * MAX_SIZE);
  for (let i = 0; i < pool.length; i += 4) pool.writeUInt32LE(Math.floor(rand() * 4294967296), i);
  const entries: { rel: string; size: number; offset: number }[] = [];
  for (let i = 0; i < FILES; i++) {
    const folder = Math.floor((i * FOLDERS) / FILES);
    const size = MIN_SIZE + Math.floor(rand() * (MAX_SIZE - MIN_SIZE + 1));
    entries.push({ rel: `d${String(folder).padStart(2, '0')}/f${String(i).padStart(5, '0')}.bin`, size, offset: Math.floor(rand() * MAX_SIZE) });
  }
  for (let f = 0; f < FOLDERS; f++) mkdirSync(join(dir, `d${String(f).padStart(2, '0')}`), { recursive: true });
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < entries.length) {
        const i = next++;
        const e = entries[i]!;
        const content = Buffer.from(pool.subarray(e.offset, e.offset + e.size));
        content.writeUInt32BE(i, 0);
        await writeFile(join(dir, e.rel), content);
      }
    }),
  );
  return { dir, files: new Map(entries.map((e) => [e.rel, e.size])), bytes: entries.reduce((s, e) => s + e.size, 0) };
}

// ---- process measurements (/proc) ----

export function procStatus(pid: number, field: string): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** Resets the process's peak RSS (VmHWM) to its current RSS; false where the kernel refuses. */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** `sync(1)`: flushes what earlier steps wrote, so each measurement starts from a clean disk; returns its seconds. */
export function flush(): number {
  const t = performance.now();
  execFileSync('sync');
  return (performance.now() - t) / 1000;
}

// ---- the measured runs ----

interface Run {
  seconds: number;
  /** `seconds` plus a `sync` right after. */
  secondsWithSync: number;
  peakRssMiB: number;
  cpuSeconds: number;
  [extra: string]: unknown;
}

interface Peer {
  name: string;
  /** Sync into an empty destination (round r's), then check it. */
  first(r: number): Promise<Run>;
  /** The same sync again, nothing changed, then check nothing was written. */
  resync(r: number): Promise<Run>;
  /** Removes round r's destination (not timed). */
  cleanup(r: number): Promise<void>;
}

/** rclone under `/usr/bin/time -v` (its peak RSS and CPU from wait4), with nothing but the given environment. */
export async function runRclone(home: string, args: string[], env: Record<string, string> = {}): Promise<{ seconds: number; peakRssMiB: number; cpuSeconds: number }> {
  const t = performance.now();
  const child = spawn('/usr/bin/time', ['-v', 'rclone', '--config', '/dev/null', ...args], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-50_000)));
  const code = await new Promise<number | null>((res) => child.once('exit', res));
  const seconds = (performance.now() - t) / 1000;
  if (code !== 0) throw new Error(`rclone ${args.join(' ')} exited with ${code}:\n${err.slice(-4000)}`);
  const num = (label: string) => Number(new RegExp(`${label}:\\s*([\\d.]+)`).exec(err)?.[1] ?? NaN);
  return {
    seconds,
    peakRssMiB: round(num('Maximum resident set size \\(kbytes\\)') / 1024, 1),
    cpuSeconds: round(num('User time \\(seconds\\)') + num('System time \\(seconds\\)')),
  };
}

export interface YunjiClient {
  proc: Proc;
  v1<T>(path: string, body: unknown): Promise<T>;
  job(id: string | number): Promise<JobView>;
}

export interface JobView {
  id: number;
  status: string;
  stats: Record<string, number> | null;
  result: unknown;
  errors: { message: string; item?: string }[];
  error_count: number;
  error_message: string | null;
  created_at: string;
  started_at: string | null;
  ended_at: string | null;
}

export async function yunjiClient(proc: Proc): Promise<YunjiClient> {
  // The server's own output (warnings and errors only), to tell why a request failed if the process died.
  let output = '';
  proc.child.stderr!.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-8000)));
  const died = (err: unknown) =>
    proc.child.exitCode !== null || proc.child.signalCode !== null
      ? new Error(`${errorText(err)}: the Yunji server exited (code ${proc.child.exitCode}, signal ${proc.child.signalCode}); its last output:\n${output}`)
      : err;
  const fetch = (url: string, init?: RequestInit) => globalThis.fetch(url, init).catch((err: unknown) => Promise.reject(died(err)));
  const token = await loginToken(proc.url);
  const headers = { authorization: `Bearer ${token}` };
  return {
    proc,
    async v1<T>(path: string, body: unknown): Promise<T> {
      const res = await fetch(proc.url + path, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const text = await res.text();
      let parsed: { code?: string; data?: T } | undefined;
      try {
        parsed = JSON.parse(text) as { code?: string; data?: T };
      } catch {
        // not JSON: reported below
      }
      if (!res.ok || parsed?.code !== 'OK') throw new Error(`POST ${path}: ${res.status} ${text.slice(0, 2000)}`);
      return parsed.data as T;
    },
    async job(id) {
      const res = await fetch(`${proc.url}/api/jobs/${id}`, { headers });
      if (!res.ok) throw new Error(`GET /api/jobs/${id}: ${res.status} ${await res.text()}`);
      return (await res.json()) as JobView;
    },
  };
}

const TERMINAL = ['succeeded', 'failed', 'cancelled'];

/** One run of a task: from the runTask request until the job is seen terminal (polled every 20 ms). */
export async function runYunjiTask(client: YunjiClient, taskID: number, timeoutMs = 600_000): Promise<{ job: JobView; seconds: number; idleRssMiB: number; peakRssMiB: number; cpuSeconds: number; peakRssSource: string }> {
  const pid = client.proc.child.pid!;
  const reset = resetPeakRss(pid);
  const idleRssMiB = procStatus(pid, 'VmRSS');
  let polledPeak = idleRssMiB;
  const cpu0 = cpuSecondsOf(pid);
  const t = performance.now();
  const { jobID } = await client.v1<{ jobID: string | number }>('/v1/spaceSyncer/runTask', { taskID });
  let job: JobView;
  for (;;) {
    job = await client.job(jobID);
    polledPeak = Math.max(polledPeak, procStatus(pid, 'VmRSS'));
    if (TERMINAL.includes(job.status)) break;
    if (performance.now() - t > timeoutMs) throw new Error(`job ${jobID} not finished after ${round(timeoutMs / 60_000, 1)} minutes: ${JSON.stringify(job)}`);
    await sleep(20);
  }
  const seconds = (performance.now() - t) / 1000;
  const cpuSeconds = cpuSecondsOf(pid) - cpu0;
  if (job.status !== 'succeeded') {
    throw new Error(`job ${jobID} ${job.status}: ${job.error_message ?? ''} (${job.error_count} errors; first: ${JSON.stringify(job.errors.slice(0, 3))}; stats ${JSON.stringify(job.stats)})`);
  }
  // Without the reset, VmHWM is the process's peak since it started: only the polled samples are this run's.
  const peakRssMiB = reset ? procStatus(pid, 'VmHWM') : polledPeak;
  return { job, seconds, idleRssMiB: round(idleRssMiB, 1), peakRssMiB: round(peakRssMiB, 1), cpuSeconds: round(cpuSeconds), peakRssSource: reset ? 'VmHWM after clear_refs' : 'VmRSS polled every 20 ms' };
}

/**
 * What the job's stats should say for a source of `expected.files` files (`expected.bytes` bytes), as
 * problems (a wrong count is a finding, not a reason to stop the bench).
 */
export function checkStats(job: JobView, expected: { files: number; bytes: number }, kind: 'first' | 'resync'): string[] {
  const s = job.stats;
  if (!s) return ['job has no stats'];
  const problems: string[] = [];
  const expect = (key: string, value: number) => {
    if (s[key] !== value) problems.push(`stats.${key} = ${s[key]}, expected ${value}`);
  };
  expect('failed', 0);
  expect('deleted', 0);
  expect('updated', 0);
  if (kind === 'first') {
    expect('copied', expected.files);
    expect('bytes', expected.bytes);
    expect('skipped', 0);
  } else {
    expect('copied', 0);
    expect('skipped', expected.files);
  }
  if (s.checked !== undefined && s.checked !== expected.files) problems.push(`stats.checked = ${s.checked}, expected ${expected.files}`);
  return problems;
}

// ---- destination checks ----

const SAMPLE_EVERY = 100;

/** Every file of a local tree, relative path → stat. */
function walk(dir: string, prefix = '', out = new Map<string, { size: number; mtimeMs: number; ctimeMs: number }>()) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) walk(join(dir, e.name), rel, out);
    else {
      const st = statSync(join(dir, e.name));
      out.set(rel, { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs });
    }
  }
  return out;
}

/** Throws unless `got` (what `where` holds) is exactly the source's files, each with its size. */
function checkInventory(where: string, got: Map<string, { size: number }>, ds: Dataset): void {
  const missing = [...ds.files.keys()].filter((k) => !got.has(k));
  const extra = [...got.keys()].filter((k) => !ds.files.has(k));
  const wrongSize = [...ds.files].filter(([k, size]) => got.has(k) && got.get(k)!.size !== size).map(([k]) => k);
  let bytes = 0;
  for (const v of got.values()) bytes += v.size;
  if (missing.length || extra.length || wrongSize.length || bytes !== ds.bytes) {
    throw new Error(
      `${where}: ${got.size} files, ${bytes} bytes (expected ${ds.files.size}, ${ds.bytes}); missing ${missing.length} (${missing.slice(0, 3).join(', ')}), extra ${extra.length} (${extra.slice(0, 3).join(', ')}), wrong size ${wrongSize.length} (${wrongSize.slice(0, 3).join(', ')})`,
    );
  }
}

/**
 * Throws unless `dst` holds exactly the source's files with their sizes (and every 100th one its
 * content); returns the softer findings: modification times not kept (beyond 1 ms), and for a
 * re-sync, files changed since it started.
 */
function checkLocal(dst: string, ds: Dataset, resyncStartedAt?: number): { problems: string[] } {
  const got = walk(dst);
  checkInventory(dst, got, ds);
  const keys = [...ds.files.keys()];
  for (let i = 0; i < keys.length; i += SAMPLE_EVERY) {
    if (!readFileSync(join(dst, keys[i]!)).equals(readFileSync(join(ds.dir, keys[i]!)))) throw new Error(`${dst}/${keys[i]} differs from the source`);
  }
  const problems: string[] = [];
  const src = walk(ds.dir);
  const mtimeOff = keys.filter((k) => Math.abs(got.get(k)!.mtimeMs - src.get(k)!.mtimeMs) > 1).length;
  if (mtimeOff) problems.push(`${mtimeOff} files without the source's modification time`);
  if (resyncStartedAt !== undefined) {
    const changed = keys.filter((k) => got.get(k)!.ctimeMs >= resyncStartedAt).length;
    if (changed) problems.push(`${changed} files changed by the no-change re-sync`);
  }
  return { problems };
}

type Listing = Map<string, { size: number; lastModified: number; etag: string }>;

async function listBucket(s3: S3Client, bucket: string, prefix: string): Promise<Listing> {
  const out: Listing = new Map();
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of page.Contents ?? []) out.set(o.Key!.slice(prefix.length), { size: o.Size ?? -1, lastModified: o.LastModified?.getTime() ?? 0, etag: o.ETag ?? '' });
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return out;
}

/** What each bucket's listing was after the first sync, to tell what a re-sync wrote. */
const firstListings = new Map<string, Listing>();

/**
 * As checkLocal, for `bucket/prefix`. A re-sync has written the objects whose LastModified or ETag
 * changed since the first sync's listing (LastModified has whole seconds: `notBefore` is when a
 * re-sync may start for a write to show).
 */
async function checkS3(s3: S3Client, bucket: string, prefix: string, ds: Dataset, resyncStartedAt?: number): Promise<{ problems: string[]; notBefore?: number }> {
  const got = await listBucket(s3, bucket, prefix);
  checkInventory(`s3://${bucket}/${prefix}`, got, ds);
  const keys = [...ds.files.keys()];
  for (let i = 0; i < keys.length; i += SAMPLE_EVERY) {
    const body = await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: prefix + keys[i]! }))).Body!.transformToByteArray();
    if (!Buffer.from(body).equals(readFileSync(join(ds.dir, keys[i]!)))) throw new Error(`s3://${bucket}/${prefix}${keys[i]} differs from the source`);
  }
  const problems: string[] = [];
  if (resyncStartedAt === undefined) {
    firstListings.set(bucket, got);
    return { problems, notBefore: Math.max(...[...got.values()].map((o) => o.lastModified)) + 1000 };
  }
  const before = firstListings.get(bucket);
  const changed = keys.filter((k) => before?.get(k)?.lastModified !== got.get(k)!.lastModified || before?.get(k)?.etag !== got.get(k)!.etag).length;
  if (changed) problems.push(`${changed} objects written by the no-change re-sync (LastModified or ETag changed)`);
  return { problems };
}

// ---- s3rver as its own process ----

async function startS3rver(directory: string, buckets: string[]): Promise<{ endpoint: string; child: ChildProcess; stop(): Promise<void> }> {
  const port = await freePort();
  const bin = join(ROOT, 'node_modules', 's3rver', 'bin', 's3rver.js');
  // s3rver's ListObjectsV2 continuation tokens use DES, which Node 20's OpenSSL 3 has only in its legacy provider:
  // without it every listing past the first 1,000 keys is a 500 (ERR_OSSL_EVP_UNSUPPORTED).
  const child = spawn(process.execPath, ['--openssl-legacy-provider', bin, '-d', directory, '-a', '127.0.0.1', '-p', String(port), '--silent', ...buckets.flatMap((b) => ['--configure-bucket', b])], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-20_000)));
  const endpoint = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`s3rver exited early:\n${err}`);
    try {
      await fetch(endpoint);
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`s3rver not listening after 30 s:\n${err}`);
      await sleep(100);
    }
  }
  return {
    endpoint,
    child,
    stop: () => stopChild(child),
  };
}

// ---- peers ----

const SYNC_TASK = { trigger: { type: 'Manual' }, mode: { type: 'Diff', includeSize: true, includeModTime: true }, filters: [], options: { noEmptyDirectories: false } };

/** A user space of the bench's user, without a shard store; its id. */
export async function createSpace(client: YunjiClient, name: string, storage: Record<string, unknown>, credential?: Record<string, unknown>): Promise<number> {
  return (await client.v1<{ userSpace: { userSpaceID: number } }>('/v1/userSpace/create', { name, storage, ...(credential ? { credential } : {}), shardStore: null })).userSpace.userSpaceID;
}

/** The bench's Manual `Diff` task (size and modification time, as rclone compares) from `srcPath` of a space to one destination; its id. */
export async function createSyncTask(client: YunjiClient, srcUserSpaceID: number, srcPath: string, dest: { userSpaceID: number; path: string }): Promise<number> {
  const { task } = await client.v1<{ task: { taskID: number } }>('/v1/spaceSyncer/createTask', {
    ...SYNC_TASK,
    srcUserSpaceID,
    srcPath,
    destUserSpaceIDs: [dest.userSpaceID],
    destPathes: [dest.path],
  });
  return task.taskID;
}

function yunjiPeer(
  name: YunjiSide,
  client: YunjiClient,
  ds: Dataset,
  srcUserSpaceID: number,
  dest: (r: number) => { userSpaceID: number; path: string },
  check: (r: number, resyncStartedAt?: number) => Promise<{ problems: string[]; notBefore?: number }>,
  cleanup: (r: number) => Promise<void>,
  extra: () => Record<string, number> = () => ({}),
): Peer {
  const tasks = new Map<number, number>();
  const notBefore = new Map<number, number>();
  const measure = async (r: number, kind: 'first' | 'resync'): Promise<Run> => {
    await waitUntil(notBefore.get(r));
    flush();
    const startedAt = Date.now();
    const before = extra();
    const run = await runYunjiTask(client, tasks.get(r)!);
    const syncSeconds = flush();
    const after = extra();
    const { problems, notBefore: next } = await check(r, kind === 'resync' ? startedAt : undefined);
    if (next !== undefined) notBefore.set(r, next);
    const job = run.job;
    const jobSeconds = job.started_at && job.ended_at ? (Date.parse(job.ended_at) - Date.parse(job.started_at)) / 1000 : NaN;
    const queuedSeconds = job.started_at ? (Date.parse(job.started_at) - Date.parse(job.created_at)) / 1000 : NaN;
    return {
      seconds: round(run.seconds),
      secondsWithSync: round(run.seconds + syncSeconds),
      load1m: round(loadavg()[0]!),
      jobSeconds: round(jobSeconds),
      queuedSeconds: round(queuedSeconds, 3),
      idleRssMiB: run.idleRssMiB,
      peakRssMiB: run.peakRssMiB,
      rssIncreaseMiB: round(run.peakRssMiB - run.idleRssMiB, 1),
      peakRssSource: run.peakRssSource,
      cpuSeconds: run.cpuSeconds,
      ...Object.fromEntries(Object.entries(after).map(([k, v]) => [k, round(v - before[k]!)])),
      stats: job.stats,
      problems: [...checkStats(job, { files: ds.files.size, bytes: ds.bytes }, kind), ...problems],
    };
  };
  return {
    name,
    async first(r) {
      tasks.set(r, await createSyncTask(client, srcUserSpaceID, 'src', dest(r)));
      return measure(r, 'first');
    },
    resync: (r) => measure(r, 'resync'),
    cleanup,
  };
}

function rclonePeer(
  name: string,
  home: string,
  flags: string[],
  env: Record<string, string>,
  src: string,
  dest: (r: number) => string,
  check: (r: number, resyncStartedAt?: number) => Promise<{ problems: string[]; notBefore?: number }>,
  cleanup: (r: number) => Promise<void>,
  extra: () => Record<string, number> = () => ({}),
): Peer {
  const notBefore = new Map<number, number>();
  const measure = async (r: number, kind: 'first' | 'resync'): Promise<Run> => {
    await waitUntil(notBefore.get(r));
    flush();
    const startedAt = Date.now();
    const before = extra();
    const run = await runRclone(home, ['sync', src, dest(r), ...flags], env);
    const syncSeconds = flush();
    const after = extra();
    const { problems, notBefore: next } = await check(r, kind === 'resync' ? startedAt : undefined);
    if (next !== undefined) notBefore.set(r, next);
    return {
      seconds: round(run.seconds),
      secondsWithSync: round(run.seconds + syncSeconds),
      load1m: round(loadavg()[0]!),
      peakRssMiB: run.peakRssMiB,
      cpuSeconds: run.cpuSeconds,
      ...Object.fromEntries(Object.entries(after).map(([k, v]) => [k, round(v - before[k]!)])),
      problems,
    };
  };
  return { name, first: (r) => measure(r, 'first'), resync: (r) => measure(r, 'resync'), cleanup };
}

export const RCLONE_FLAGS: Record<string, string[]> = { rclone: [], rclone816: ['--transfers', '8', '--checkers', '16'] };

type RoundResult = Record<string, { first?: Run; resync?: Run; error?: string }>;

/**
 * Each round, every peer (order rotated by round): first sync, re-sync; the destinations are
 * removed only after the last round. Removed between runs, they made the next tool's first sync
 * pay for them: for minutes after many files are deleted, ext4 scans past their inodes
 * (`recently_deleted`) each time it creates one, which doubled some first syncs. A peer's failure
 * is recorded, the others go on.
 */
async function rounds(peers: Peer[], n: number): Promise<RoundResult[]> {
  const out: RoundResult[] = [];
  try {
    for (let r = 0; r < n; r++) {
      const result: RoundResult = {};
      const order = peers.map((_, i) => peers[(i + r) % peers.length]!);
      for (const peer of order) {
        const entry: RoundResult[string] = {};
        result[peer.name] = entry;
        try {
          entry.first = await peer.first(r);
          entry.resync = await peer.resync(r);
        } catch (err) {
          entry.error = errorText(err);
          console.error(`[sync bench] ${peer.name}, round ${r + 1}: ${entry.error}`);
        }
      }
      out.push(result);
    }
  } finally {
    for (let r = 0; r < n; r++) {
      for (const peer of peers) {
        try {
          await peer.cleanup(r);
        } catch (err) {
          console.error(`[sync bench] cleanup of ${peer.name}, round ${r + 1}: ${errorText(err)}`);
        }
      }
    }
  }
  return out;
}

/** Medians per peer, and Yunji ÷ each rclone setting: time (median of per-round ratios) and RSS. */
function summarize(results: RoundResult[]) {
  const ok = (name: string) => results.map((r) => r[name]).filter((e): e is { first: Run; resync: Run } => !!e?.first && !!e.resync);
  const names = [...new Set(results.flatMap((r) => Object.keys(r)))];
  const perPeer = Object.fromEntries(
    names.map((name) => {
      const runs = ok(name);
      return [
        name,
        {
          rounds: runs.length,
          firstSeconds: median(runs.map((x) => x.first.seconds)),
          firstSecondsWithSync: median(runs.map((x) => x.first.secondsWithSync)),
          resyncSeconds: median(runs.map((x) => x.resync.seconds)),
          firstCpuSeconds: median(runs.map((x) => x.first.cpuSeconds)),
          resyncCpuSeconds: median(runs.map((x) => x.resync.cpuSeconds)),
          peakRssMiB: Math.max(...runs.flatMap((x) => [x.first.peakRssMiB, x.resync.peakRssMiB])),
          ...(name.startsWith('yunji')
            ? {
                idleRssMiB: Math.min(...runs.flatMap((x) => [x.first.idleRssMiB as number, x.resync.idleRssMiB as number])),
                rssIncreaseMiB: Math.max(...runs.flatMap((x) => [x.first.rssIncreaseMiB as number, x.resync.rssIncreaseMiB as number])),
              }
            : {}),
        },
      ];
    }),
  );
  const yunji = results.filter((r) => r.yunji?.first && r.yunji.resync);
  const ratios: Record<string, unknown> = {};
  for (const peer of names.filter((n) => !n.startsWith('yunji'))) {
    const both = yunji.filter((r) => r[peer]?.first && r[peer].resync);
    if (both.length === 0) continue;
    const per = (f: (x: { first: Run; resync: Run }) => number) => both.map((r) => round(f(r.yunji as { first: Run; resync: Run }) / f(r[peer] as { first: Run; resync: Run })));
    const firstPerRound = per((x) => x.first.seconds);
    const resyncPerRound = per((x) => x.resync.seconds);
    const y = perPeer.yunji!;
    const p = perPeer[peer]!;
    ratios[peer] = {
      first: median(firstPerRound),
      firstPerRound,
      firstWithSync: median(per((x) => x.first.secondsWithSync)),
      resync: median(resyncPerRound),
      resyncPerRound,
      rssPeak: round(y.peakRssMiB / p.peakRssMiB),
      rssIncrease: round((y.rssIncreaseMiB as number) / p.peakRssMiB),
    };
  }
  const portable = results.filter((r) => r.yunji?.first && r.yunji.resync && r['yunji-portable']?.first && r['yunji-portable'].resync) as Record<YunjiSide, { first: Run; resync: Run }>[];
  const portableOver = (f: (x: { first: Run; resync: Run }) => number) => median(portable.map((r) => round(f(r['yunji-portable']) / f(r.yunji))));
  const portableOverNative =
    portable.length === 0
      ? undefined
      : {
          rounds: portable.length,
          first: portableOver((x) => x.first.seconds),
          resync: portableOver((x) => x.resync.seconds),
          firstCpu: portableOver((x) => x.first.cpuSeconds),
          resyncCpu: portableOver((x) => x.resync.cpuSeconds),
        };
  return { perPeer, ratios, portableOverNative };
}

const TARGETS = { first: '≤ 1.0× rclone (aim 0.7×)', resync: '≤ 1.0× rclone (aim 0.5×)', rss: '≤ 2× rclone' };

export async function syncBench(): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'yunji-bench-sync-'));
  const home = join(dir, 'rclone-home');
  mkdirSync(home);
  const out: Record<string, unknown> = {};
  const servers: (Proc & { dataDir: string })[] = [];
  let s3rver: Awaited<ReturnType<typeof startS3rver>> | undefined;
  try {
    const t = performance.now();
    const ds = await makeDataset(join(dir, 'src-space', 'src'));
    flush();
    out.dataset = { files: ds.files.size, folders: FOLDERS, bytes: ds.bytes, mib: round(ds.bytes / 1048576, 1), seed: SEED, sizes: `${MIN_SIZE}–${MAX_SIZE} bytes`, createSeconds: round((performance.now() - t) / 1000) };
    out.rclone = execFileSync('rclone', ['--config', '/dev/null', 'version']).toString().split('\n')[0];
    out.load1mAtStart = round(loadavg()[0]!);
    out.targets = TARGETS;

    /** Each Yunji server run, with its client and its space over the source. */
    const sides: { name: YunjiSide; client: YunjiClient; srcSpaceID: number }[] = [];
    for (const name of (Object.keys(YUNJI_SIDES) as YunjiSide[]).filter((n) => TOOLS.includes(n))) {
      const server = await startYunji('', { YUNJI_LOCAL_ROOTS: dir, YUNJI_OUTBOUND_ALLOW: '127.0.0.1', ...YUNJI_SIDES[name] });
      servers.push(server);
      const client = await yunjiClient(server);
      sides.push({ name, client, srcSpaceID: await createSpace(client, 'bench-src', { type: 'local', root: join(dir, 'src-space') }) });
    }

    // Local → local.
    {
      const localPeers: Peer[] = [];
      for (const { name, client, srcSpaceID } of sides) {
        const root = join(dir, `${name}-dst`);
        mkdirSync(root);
        const id = await createSpace(client, 'bench-dst', { type: 'local', root });
        localPeers.push(
          yunjiPeer(
            name,
            client,
            ds,
            srcSpaceID,
            (r) => ({ userSpaceID: id, path: `dst-r${r + 1}` }),
            async (r, since) => checkLocal(join(root, `dst-r${r + 1}`), ds, since),
            async (r) => rmSync(join(root, `dst-r${r + 1}`), { recursive: true, force: true }),
          ),
        );
      }
      for (const name of ['rclone', 'rclone816'].filter((n) => TOOLS.includes(n))) {
        const dst = (r: number) => join(dir, `${name}-dst`, `dst-r${r + 1}`);
        localPeers.push(
          rclonePeer(
            name,
            home,
            RCLONE_FLAGS[name]!,
            {},
            ds.dir,
            dst,
            async (r, since) => checkLocal(dst(r), ds, since),
            async (r) => rmSync(dst(r), { recursive: true, force: true }),
          ),
        );
      }
      const results = await rounds(localPeers, ROUNDS);
      out.local = { ...summarize(results), rounds: results };
    }

    // Local → S3 (s3rver).
    if (S3_ROUNDS > 0) {
      try {
        const buckets = Array.from({ length: S3_ROUNDS }, (_, r) => TOOLS.map((tool) => `${tool}-r${r + 1}`)).flat();
        const bucketOf = (name: YunjiSide, r: number) => (name === 'yunji' ? `yunji-r${r + 1}` : `${name}-r${r + 1}`);
        s3rver = await startS3rver(join(dir, 's3rver'), buckets);
        const s3 = new S3Client({ endpoint: s3rver.endpoint, region: S3_REGION, credentials: S3_CREDENTIAL, forcePathStyle: true });
        const s3Pid = s3rver.child.pid!;
        const s3Cpu = () => ({ s3rverCpuSeconds: cpuSecondsOf(s3Pid) });
        const s3Peers: Peer[] = [];
        for (const { name, client, srcSpaceID } of sides) {
          const ids: number[] = [];
          for (let r = 0; r < S3_ROUNDS; r++) {
            ids.push(
              await createSpace(
                client,
                `bench-s3-r${r + 1}`,
                { type: 'MinIO', endpoint: s3rver.endpoint, bucket: bucketOf(name, r), region: S3_REGION, forcePathStyle: true },
                { type: 'MinIO', ...S3_CREDENTIAL },
              ),
            );
          }
          s3Peers.push(
            yunjiPeer(
              name,
              client,
              ds,
              srcSpaceID,
              (r) => ({ userSpaceID: ids[r]!, path: 'dst' }),
              (r, since) => checkS3(s3, bucketOf(name, r), 'dst/', ds, since),
              async () => {},
              s3Cpu,
            ),
          );
        }
        const env = {
          [`RCLONE_CONFIG_${RCLONE_REMOTE}_TYPE`]: 's3',
          [`RCLONE_CONFIG_${RCLONE_REMOTE}_PROVIDER`]: 'Other',
          [`RCLONE_CONFIG_${RCLONE_REMOTE}_ENDPOINT`]: s3rver.endpoint,
          [`RCLONE_CONFIG_${RCLONE_REMOTE}_REGION`]: S3_REGION,
          [`RCLONE_CONFIG_${RCLONE_REMOTE}_ACCESS_KEY_ID`]: S3_CREDENTIAL.accessKeyId,
          [`RCLONE_CONFIG_${RCLONE_REMOTE}_SECRET_ACCESS_KEY`]: S3_CREDENTIAL.secretAccessKey,
          [`RCLONE_CONFIG_${RCLONE_REMOTE}_FORCE_PATH_STYLE`]: 'true',
        };
        for (const name of ['rclone', 'rclone816'].filter((n) => TOOLS.includes(n))) {
          s3Peers.push(
            rclonePeer(
              name,
              home,
              RCLONE_FLAGS[name]!,
              env,
              ds.dir,
              (r) => `${RCLONE_REMOTE}:${name}-r${r + 1}/dst`,
              (r, since) => checkS3(s3, `${name}-r${r + 1}`, 'dst/', ds, since),
              async () => {},
              s3Cpu,
            ),
          );
        }
        const results = await rounds(s3Peers, S3_ROUNDS);
        out.s3 = { server: 's3rver 3.7.1, its own process', ...summarize(results), rounds: results };
        s3.destroy();
      } catch (err) {
        out.s3 = `failed: ${errorText(err)}`;
      }
    }
    out.load1mAtEnd = round(loadavg()[0]!);
    out.benchSeconds = round((performance.now() - t) / 1000, 1);
    for (const [i, server] of servers.entries()) {
      out[`${sides[i]!.name}RssAtEndMiB`] = server.child.exitCode === null ? round(procStatus(server.child.pid!, 'VmRSS'), 1) : `exited (code ${server.child.exitCode})`;
    }
    return out;
  } finally {
    await s3rver?.stop();
    for (const server of servers) await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
