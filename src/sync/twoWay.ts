import { CancelledError } from '../jobs/context.ts';
import type { SyncReport } from './engine.ts';
import { sameTime, TIME_TOLERANCE_MS } from './engine.ts';
import { Pool } from './pool.ts';
import { compareUtf8, mergeByPath, sha256Of, type SyncTree, type TreeEntry } from './tree.ts';

/** One file as both sides showed it after the last sync (their listings' sizes and times). */
export interface SnapshotEntry {
  path: string;
  size: number;
  localMtime: number;
  cloudMtime: number;
}

export interface TwoWayStats {
  checked: number;
  uploaded: number;
  downloaded: number;
  deletedLocal: number;
  deletedCloud: number;
  conflicts: number;
  skipped: number;
  failed: number;
  bytes: number;
}

const TRANSFERS = 8;

/** `dir/name.ext` → `dir/name.conflict-<time>[-n].ext` (no extension: `name.conflict-<time>[-n]`). */
export function conflictPath(path: string, at: number, n = 1): string {
  const stamp = new Date(at).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z') + (n > 1 ? `-${n}` : '');
  const slash = path.lastIndexOf('/');
  const dot = path.lastIndexOf('.');
  return dot > slash + 1 ? `${path.slice(0, dot)}.conflict-${stamp}${path.slice(dot)}` : `${path}.conflict-${stamp}`;
}

async function exists(tree: SyncTree, path: string): Promise<boolean> {
  for await (const _ of tree.entries(false, path)) return true;
  return false;
}

const changed = (e: TreeEntry, size: number, mtime: number) => e.size !== size || Math.abs(e.mtimeMs - mtime) >= TIME_TOLERANCE_MS;

/** Whether the two sides hold the same file: same size, and the same time (each side's own) or, failing that, the same content. */
async function same(local: SyncTree, l: TreeEntry, cloud: SyncTree, c: TreeEntry, signal: AbortSignal): Promise<boolean> {
  if (l.size !== c.size) return false;
  if (await sameTime(local, l, cloud, c)) return true;
  const [a, b] = await Promise.all([sha256Of(local, l, signal), sha256Of(cloud, c, signal)]);
  return a === b;
}

/**
 * Two-way sync of a local and a cloud folder against the snapshot of the last sync: a file new or
 * changed on one side goes to the other; a file deleted on one side and unchanged on the other is
 * deleted there; a file changed on both sides (or new on both with different content) keeps both:
 * the local version keeps the name on both sides and the cloud version becomes
 * `name.conflict-<time>.ext` on both sides. A change always beats a deletion, and without a
 * snapshot (the first run) nothing is deleted. Per-file failures are reported and counted.
 */
export async function twoWaySync(local: SyncTree, cloud: SyncTree, snapshot: AsyncIterable<SnapshotEntry>, startedAt: number, report: SyncReport): Promise<TwoWayStats> {
  const stats: TwoWayStats = { checked: 0, uploaded: 0, downloaded: 0, deletedLocal: 0, deletedCloud: 0, conflicts: 0, skipped: 0, failed: 0, bytes: 0 };
  const pool = new Pool(TRANSFERS);
  const signal = report.signal;
  let done = 0;
  const step = (info: string) => {
    done++;
    report.progress(done, stats.checked, info);
    report.stats({ ...stats });
  };
  const run = (path: string, what: string, work: () => Promise<void>) =>
    pool.add(async () => {
      try {
        report.checkpoint();
        await work();
        step(`${what} '${path}'`);
      } catch (err) {
        if (!(err instanceof CancelledError) && !signal.aborted) {
          stats.failed++;
          report.error(`${what}: ${(err as Error).message}`, path);
        }
        step(`failed '${path}'`);
      }
    });
  const upload = (l: TreeEntry) =>
    run(l.path, 'uploaded', async () => {
      stats.bytes += (await cloud.write(l, local, signal)).size;
      stats.uploaded++;
    });
  const download = (c: TreeEntry) =>
    run(c.path, 'downloaded', async () => {
      stats.bytes += (await local.write(c, cloud, signal)).size;
      stats.downloaded++;
    });
  /** Conflict copies made by this run: never a name either side has (an earlier conflict in the same second), never planned again. */
  const made = new Set<string>();
  const freeConflictPath = async (path: string) => {
    for (let n = 1; ; n++) {
      const candidate = conflictPath(path, startedAt, n);
      if (made.has(candidate)) continue;
      // Only the name chosen is set aside: an existing file with a tried name is still planned as usual.
      if (!(await exists(local, candidate)) && !(await exists(cloud, candidate))) {
        made.add(candidate);
        return candidate;
      }
    }
  };
  const conflict = (l: TreeEntry, c: TreeEntry) =>
    run(l.path, 'kept both versions of', async () => {
      const copy = { ...c, path: await freeConflictPath(c.path) };
      await local.write(copy, cloud, signal);
      await cloud.write(copy, cloud, signal);
      stats.bytes += (await cloud.write(l, local, signal)).size + 2 * c.size;
      stats.conflicts++;
      report.log(`'${l.path}' changed on both sides: the cloud's version is now '${copy.path}' on both`, 'warn');
    });

  try {
    await plan();
  } finally {
    // Also on a cancel: the job ends only once no copy is still writing.
    await pool.drain();
  }
  report.stats({ ...stats });
  report.checkpoint();
  return stats;

  async function plan(): Promise<void> {
    const snap = snapshot[Symbol.asyncIterator]();
    let s = await snap.next();
    const lister = mergeByPath(local.entries(false)[Symbol.asyncIterator](), cloud.entries(false)[Symbol.asyncIterator]());
    for await (const [l, c] of lister) {
      report.checkpoint();
      const path = (l ?? c)!.path;
      // A conflict copy this run made may show up in a listing page read after it was written.
      if (made.has(path)) continue;
      const problem = l?.problem ?? c?.problem;
      if (problem) {
        // Neither copied nor deleted: a file whose name cannot be a key stays as it is on both sides.
        stats.failed++;
        report.error(problem, path);
        continue;
      }
      while (!s.done && compareUtf8(s.value.path, path) < 0) s = await snap.next();
      const prior = !s.done && s.value.path === path ? s.value : undefined;
      stats.checked++;
      if (l && c) {
        const lc = !prior || changed(l, prior.size, prior.localMtime);
        const cc = !prior || changed(c, prior.size, prior.cloudMtime);
        if (!lc && !cc) {
          stats.skipped++;
          step(`unchanged '${path}'`);
        } else if (lc && !cc) await upload(l);
        else if (!lc && cc) await download(c);
        else if (await same(local, l, cloud, c, signal)) {
          stats.skipped++;
          step(`same on both sides '${path}'`);
        } else await conflict(l, c);
      } else if (l) {
        if (prior && !changed(l, prior.size, prior.localMtime)) {
          await run(path, 'deleted locally', async () => {
            await local.remove(l);
            stats.deletedLocal++;
          });
        } else await upload(l);
      } else if (c) {
        if (prior && !changed(c, prior.size, prior.cloudMtime)) {
          await run(path, 'deleted in the cloud', async () => {
            await cloud.remove(c);
            stats.deletedCloud++;
          });
        } else await download(c);
      }
    }
  }
}

/** The files both sides now hold alike: the snapshot the next sync compares against. */
export async function* matchingPairs(local: SyncTree, cloud: SyncTree, signal: AbortSignal): AsyncGenerator<SnapshotEntry> {
  for await (const [l, c] of mergeByPath(local.entries(false)[Symbol.asyncIterator](), cloud.entries(false)[Symbol.asyncIterator]())) {
    if (l && c && (await same(local, l, cloud, c, signal))) yield { path: l.path, size: l.size, localMtime: l.mtimeMs, cloudMtime: c.mtimeMs };
  }
}
