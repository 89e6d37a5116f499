import { execFile, execFileSync } from 'node:child_process';
import { closeSync, futimesSync, mkdirSync, mkdtempSync, openSync, rmSync, statfsSync, writeFileSync, writeSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { round, startYunji, type Proc } from './lib.ts';
import {
  benchSyncTools,
  checkStats,
  createSpace,
  createSyncTask,
  errorText,
  flush,
  prng,
  procStatus,
  RCLONE_FLAGS,
  runRclone,
  runYunjiTask,
  yunjiClient,
} from './sync.ts';

/**
 * Issue 5: "A diff over 1,000,000 unchanged files stays under 512 MB RSS."
 *
 * `BENCH_MILLION_FILES` (default 1,000,000) files of 0–64 bytes (sizes, content and modification
 * times, with their sub-second part, from a seeded PRNG) in 1,000 folders, under a new directory of
 * os.tmpdir(); a destination tree identical to it (same relative paths, sizes, content and times:
 * each folder copied by `cp -r --preserve=timestamps` as soon as it is written). Setup is not timed
 * against anything; its seconds are reported. Both trees are removed at the end, also when the bench
 * fails or is interrupted.
 *
 * Yunji: the real server (`startYunji`, SQLite, YUNJI_LOCAL_ROOTS = the bench's directory), two
 * `local` user spaces over the two trees and the sync bench's Manual `Diff` task (size and time),
 * run once with `runTask` exactly as bench/sync.ts runs its re-sync: timed from the request until
 * the job is seen terminal (polled every 20 ms); peak RSS is VmHWM after `/proc/<pid>/clear_refs`
 * (reset just before the request), beside the resident size just before (`idleRssMiB`) and VmRSS
 * sampled every second by this process (`rssSamples`, to see whether it grows with the files
 * done); CPU seconds of the server process. The job's stats must say checked = skipped = N and
 * nothing copied, updated, deleted or failed, and no file or folder of either tree may have
 * changed (`find -cnewer` a marker written just before the run).
 *
 * `BENCH_SYNC_TOOLS` containing `rclone` (and/or `rclone816`): also `rclone sync` (Debian's, empty
 * configuration, its default 4/8 transfers/checkers; `rclone816` with Yunji's 8/16) over the same
 * two trees, under `/usr/bin/time -v`, after Yunji; the same no-change check after it. Default:
 * Yunji only.
 */
const FILES = Number(process.env.BENCH_MILLION_FILES ?? 1_000_000);
const FOLDERS = 1000;
const MAX_SIZE = 64;
const SEED = 20261205;
const TOOLS = benchSyncTools('yunji');
/** Issue 5's target for the server's peak RSS. */
const TARGET_MIB = 512;
/** A run of a million files may take a while on a busy machine; a stuck job still ends the bench. */
const JOB_TIMEOUT_MS = 60 * 60_000;
const TREE = 'tree';
const RSS_SAMPLE_MS = 1000;
/** Modification times: within a year from 2023-11-14, with a sub-second part. */
const MTIME_BASE_S = 1_700_000_000;
const MTIME_SPAN_S = 365 * 86_400;

const folderName = (f: number) => `d${String(f).padStart(3, '0')}`;

const log = (message: string) => console.error(`[sync-million] ${message}`);

/** `cp -r --preserve=timestamps from into/`: the folder copied with its files' times to the nanosecond. */
function copyFolder(from: string, into: string): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile('cp', ['-r', '--preserve=timestamps', from, `${into}/`], (err, _stdout, stderr) =>
      err ? reject(new Error(`cp ${from}: ${errorText(err)} ${stderr}`)) : resolve(),
    ),
  );
}

/**
 * Writes the source tree at `src` (each file with open, write, futimes, close: synchronous calls,
 * the fastest Node has for small files) and, one folder behind, the destination at `dst` by `cp`
 * (its own process: the two trees are written on both cores). Nothing per file is kept in memory.
 */
async function makeTrees(src: string, dst: string): Promise<{ files: number; bytes: number; emptyFiles: number }> {
  const rand = prng(SEED);
  const pool = Buffer.alloc(1024);
  for (let i = 0; i < pool.length; i += 4) pool.writeUInt32LE(Math.floor(rand() * 4294967296), i);
  mkdirSync(dst, { recursive: true });
  let bytes = 0;
  let emptyFiles = 0;
  let i = 0;
  const copies = new Set<Promise<void>>();
  let copyFailed: unknown;
  const t = performance.now();
  for (let f = 0; f < FOLDERS; f++) {
    const folder = join(src, folderName(f));
    mkdirSync(folder, { recursive: true });
    for (; i < FILES && Math.floor((i * FOLDERS) / FILES) === f; i++) {
      const size = Math.floor(rand() * (MAX_SIZE + 1));
      const offset = Math.floor(rand() * (pool.length - MAX_SIZE));
      const mtime = MTIME_BASE_S + rand() * MTIME_SPAN_S;
      const fd = openSync(join(folder, `f${String(i).padStart(7, '0')}.bin`), 'w');
      try {
        if (size > 0) writeSync(fd, pool, offset, size);
        futimesSync(fd, mtime, mtime);
      } finally {
        closeSync(fd);
      }
      bytes += size;
      if (size === 0) emptyFiles++;
    }
    // Two copies at most under way beside this loop (the kernel's work on either tree is most of the cost).
    while (copies.size >= 2) await Promise.race(copies);
    if (copyFailed) throw copyFailed;
    const copy: Promise<void> = copyFolder(folder, dst)
      .catch((err: unknown) => {
        copyFailed ??= err;
      })
      .finally(() => copies.delete(copy));
    copies.add(copy);
    if ((f + 1) % 100 === 0) log(`${f + 1}/${FOLDERS} folders written (${i} files), ${round((performance.now() - t) / 1000, 1)} s`);
  }
  await Promise.all(copies);
  if (copyFailed) throw copyFailed;
  return { files: i, bytes, emptyFiles };
}

/** Paths under `roots` whose status changed after `marker` was written (a file written, renamed, re-timed; a folder's entries changed). */
function changedSince(marker: string, roots: string[]): { count: number; first: string[] } {
  const out = execFileSync('find', [...roots, '-cnewer', marker], { maxBuffer: 1 << 30 }).toString();
  const lines = out.split('\n').filter(Boolean);
  return { count: lines.length, first: lines.slice(0, 5) };
}

/** Writes a new marker file (its modification time: now) for `changedSince`. */
function newMarker(dir: string, name: string): string {
  const path = join(dir, name);
  writeFileSync(path, '');
  return path;
}

/** Removes the bench directory, its two trees by two `rm -rf` at once (a million files each). */
async function removeAll(dir: string, trees: string[]): Promise<void> {
  await Promise.all(trees.map((t) => new Promise<void>((resolve) => execFile('rm', ['-rf', t], () => resolve()))));
  rmSync(dir, { recursive: true, force: true });
}

/** VmRSS of `pid` every second until stopped: [seconds since start, MiB]. */
function sampleRss(pid: number): { stop(): [number, number][] } {
  const t = performance.now();
  const samples: [number, number][] = [];
  const take = () => {
    try {
      samples.push([round((performance.now() - t) / 1000, 1), round(procStatus(pid, 'VmRSS'), 1)]);
    } catch {
      // the process has gone: the run reports why
    }
  };
  take();
  const timer = setInterval(take, RSS_SAMPLE_MS);
  return {
    stop() {
      clearInterval(timer);
      take();
      return samples;
    },
  };
}

/** At most `n` of the samples, evenly spread, the first and last included. */
function thin<T>(xs: T[], n: number): T[] {
  if (xs.length <= n) return xs;
  return Array.from({ length: n }, (_, k) => xs[Math.round((k * (xs.length - 1)) / (n - 1))]!);
}

/**
 * The no-change diff on Yunji's server: the task over the two trees run once, as bench/sync.ts runs
 * its re-sync. A failure (the job, or the server dying) is recorded with the RSS samples so far.
 */
async function measureYunji(
  yunji: Proc,
  dir: string,
  srcRoot: string,
  dstRoot: string,
  ds: { files: number; bytes: number },
): Promise<Record<string, unknown>> {
  const pid = yunji.child.pid!;
  const rssAfterStartMiB = round(procStatus(pid, 'VmRSS'), 1);
  const client = await yunjiClient(yunji);
  const srcID = await createSpace(client, 'bench-src', { type: 'local', root: srcRoot });
  const dstID = await createSpace(client, 'bench-dst', { type: 'local', root: dstRoot });
  const taskID = await createSyncTask(client, srcID, TREE, { userSpaceID: dstID, path: TREE });
  flush();
  const marker = newMarker(dir, 'before-yunji');
  log(`Yunji: diff of ${ds.files} unchanged files…`);
  const sampler = sampleRss(pid);
  let run: Awaited<ReturnType<typeof runYunjiTask>>;
  try {
    run = await runYunjiTask(client, taskID, JOB_TIMEOUT_MS);
  } catch (err) {
    return { database: 'SQLite', error: errorText(err), rssAfterStartMiB, rssSamples: thin(sampler.stop(), 40) };
  }
  const rssSamples = thin(sampler.stop(), 40);
  const changed = changedSince(marker, [srcRoot, dstRoot]);
  const problems = checkStats(run.job, ds, 'resync');
  if (run.job.stats && run.job.stats.checked === undefined) problems.push('stats.checked is missing');
  if (changed.count > 0) problems.push(`${changed.count} paths changed by the no-change diff (first: ${changed.first.join(', ')})`);
  const increase = round(run.peakRssMiB - run.idleRssMiB, 1);
  return {
    database: 'SQLite',
    seconds: round(run.seconds),
    filesPerSecond: Math.round(ds.files / run.seconds),
    cpuSeconds: run.cpuSeconds,
    load1m: round(loadavg()[0]!),
    rssAfterStartMiB,
    idleRssMiB: run.idleRssMiB,
    peakRssMiB: run.peakRssMiB,
    peakRssSource: run.peakRssSource,
    rssIncreaseMiB: increase,
    rssAfterMiB: round(procStatus(pid, 'VmRSS'), 1),
    target: `peak RSS < ${TARGET_MIB} MiB`,
    targetMet: run.peakRssMiB < TARGET_MIB,
    // "512 MB" read as 512 × 10^6 bytes is 488 MiB.
    targetMetAsDecimalMB: run.peakRssMiB * 2 ** 20 < TARGET_MIB * 1e6,
    stats: run.job.stats,
    problems,
    rssSamples,
  };
}

export async function syncMillionBench(): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'yunji-bench-million-'));
  const srcRoot = join(dir, 'src-space');
  const dstRoot = join(dir, 'dst-space');
  const src = join(srcRoot, TREE);
  const dst = join(dstRoot, TREE);
  const out: Record<string, unknown> = {};
  let yunji: (Proc & { dataDir: string }) | undefined;
  // Ctrl-C: the trees are removed all the same (the server, in the same process group, gets the signal too).
  const onSignal = (signal: NodeJS.Signals) => {
    log(`${signal}: removing ${dir}`);
    yunji?.child.kill('SIGTERM');
    if (yunji) rmSync(yunji.dataDir, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    // Two trees: 2 inodes a file, and a 4 KiB block for each file that is not empty (ext4).
    const fs = statfsSync(dir);
    const needInodes = 2 * FILES + 2 * FOLDERS + 100;
    const needBytes = 2 * FILES * 4096;
    if (fs.ffree < needInodes || fs.bavail * fs.bsize < needBytes) {
      throw new Error(
        `${tmpdir()} has ${fs.ffree} free inodes and ${round((fs.bavail * fs.bsize) / 2 ** 30, 1)} GiB; two trees of ${FILES} files need about ${needInodes} and ${round(needBytes / 2 ** 30, 1)} GiB`,
      );
    }
    out.load1mAtStart = round(loadavg()[0]!);
    const t = performance.now();
    const ds = await makeTrees(src, dst);
    const createSeconds = (performance.now() - t) / 1000;
    const flushSeconds = flush();
    out.dataset = {
      files: ds.files,
      folders: FOLDERS,
      bytes: ds.bytes,
      emptyFiles: ds.emptyFiles,
      sizes: `0–${MAX_SIZE} bytes`,
      seed: SEED,
      where: dir,
      createSeconds: round(createSeconds, 1),
      flushSeconds: round(flushSeconds, 1),
      method: 'source: open/write/futimes/close per file (synchronous); destination: cp -r --preserve=timestamps per folder, alongside',
    };
    log(`trees written: ${ds.files} files each, ${round(createSeconds, 1)} s (+ ${round(flushSeconds, 1)} s sync)`);

    if (TOOLS.includes('yunji')) {
      yunji = await startYunji('', { YUNJI_LOCAL_ROOTS: dir });
      out.yunji = await measureYunji(yunji, dir, srcRoot, dstRoot, ds);
      const y = out.yunji as { seconds?: number; peakRssMiB?: number; idleRssMiB?: number; error?: string };
      log(
        y.error !== undefined ? `Yunji failed: ${y.error}` : `Yunji: ${y.seconds} s, peak RSS ${y.peakRssMiB} MiB (idle ${y.idleRssMiB})`,
      );
      await yunji.stop();
      yunji = undefined;
    }

    const home = join(dir, 'rclone-home');
    mkdirSync(home);
    const rclones = ['rclone', 'rclone816'].filter((n) => TOOLS.includes(n));
    if (rclones.length > 0) {
      try {
        out.rcloneVersion = execFileSync('rclone', ['--config', '/dev/null', 'version']).toString().split('\n')[0];
      } catch (err) {
        out.rcloneVersion = `rclone not runnable (apt-get install rclone): ${errorText(err)}`;
      }
    }
    for (const name of rclones) {
      flush();
      const marker = newMarker(dir, `before-${name}`);
      log(`${name}: sync of ${ds.files} unchanged files…`);
      try {
        const run = await runRclone(home, ['sync', src, dst, ...RCLONE_FLAGS[name]!]);
        const changed = changedSince(marker, [srcRoot, dstRoot]);
        out[name] = {
          flags: RCLONE_FLAGS[name]!.join(' ') || '(defaults: 4 transfers, 8 checkers)',
          seconds: round(run.seconds),
          cpuSeconds: run.cpuSeconds,
          peakRssMiB: run.peakRssMiB,
          load1m: round(loadavg()[0]!),
          problems: changed.count > 0 ? [`${changed.count} paths changed by the no-change sync (first: ${changed.first.join(', ')})`] : [],
        };
      } catch (err) {
        out[name] = { error: errorText(err) };
      }
    }
    const y = out.yunji as { seconds?: number; peakRssMiB?: number } | undefined;
    const r = out.rclone as { seconds?: number; peakRssMiB?: number } | undefined;
    if (y?.seconds !== undefined && y.peakRssMiB !== undefined && r?.seconds !== undefined && r.peakRssMiB !== undefined) {
      out.ratiosToRclone = { seconds: round(y.seconds / r.seconds), peakRss: round(y.peakRssMiB / r.peakRssMiB) };
    }
    out.load1mAtEnd = round(loadavg()[0]!);
    return out;
  } finally {
    await yunji?.stop();
    const t = performance.now();
    await removeAll(dir, [src, dst]);
    log(`removed ${dir} in ${round((performance.now() - t) / 1000, 1)} s`);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
