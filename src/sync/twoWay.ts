import { CancelledError } from '../jobs/context.ts';
import type { SyncReport } from './engine.ts';
import { TIME_TOLERANCE_MS } from './engine.ts';
import { Pool } from '../lib/pool.ts';
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
  const stamp =
    new Date(at)
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d+Z$/, 'Z') + (n > 1 ? `-${n}` : '');
  const slash = path.lastIndexOf('/');
  const dot = path.lastIndexOf('.');
  return dot > slash + 1 ? `${path.slice(0, dot)}.conflict-${stamp}${path.slice(dot)}` : `${path}.conflict-${stamp}`;
}

async function exists(tree: SyncTree, path: string): Promise<boolean> {
  for await (const _ of tree.entries(false, path)) return true;
  return false;
}

const changed = (e: TreeEntry, size: number, mtime: number) => e.size !== size || Math.abs(e.mtimeMs - mtime) >= TIME_TOLERANCE_MS;

/** Whether a pair is as the snapshot saw it on both sides (and so still as alike as it was then). */
export const unchangedSince = (prior: SnapshotEntry | undefined, l: TreeEntry, c: TreeEntry) =>
  prior !== undefined && !changed(l, prior.size, prior.localMtime) && !changed(c, prior.size, prior.cloudMtime);

/** Whether two files hold the same bytes: only content says so (sizes and times only say what changed). */
async function sameContent(aTree: SyncTree, a: TreeEntry, bTree: SyncTree, b: TreeEntry, signal: AbortSignal): Promise<boolean> {
  if (a.size !== b.size) return false;
  const [x, y] = await Promise.all([sha256Of(aTree, a, signal), sha256Of(bTree, b, signal)]);
  return x === y;
}

/**
 * The snapshot entry of each path asked for, asked in byte order of the paths (each entry read
 * once, as the listings are merged).
 */
export function snapshotCursor(snapshot: AsyncIterable<SnapshotEntry>): (path: string) => Promise<SnapshotEntry | undefined> {
  const it = snapshot[Symbol.asyncIterator]();
  let s: IteratorResult<SnapshotEntry> | undefined;
  return async (path) => {
    s ??= await it.next();
    while (!s.done && compareUtf8(s.value.path, path) < 0) s = await it.next();
    return !s.done && s.value.path === path ? s.value : undefined;
  };
}

/** At most this many pairs are remembered per run (about 150 bytes each); past it, `matchingPairs` compares content instead. */
const MAX_KNOWN_ALIKE = 200_000;

/**
 * The pairs a run knows to hold the same content (it copied one side to the other, or compared
 * their bytes), with the size and the time each side showed or was given then. The snapshot
 * records such a pair only if both sides still show those.
 */
export class KnownAlike {
  private readonly pairs = new Map<string, { size: number; localMtime: number; cloudMtime: number }>();

  add(path: string, size: number, localMtime: number, cloudMtime: number): void {
    if (this.pairs.size < MAX_KNOWN_ALIKE || this.pairs.has(path)) this.pairs.set(path, { size, localMtime, cloudMtime });
  }

  get(path: string) {
    return this.pairs.get(path);
  }
}

/**
 * Two-way sync of a local and a cloud folder against the snapshot of the last sync: a file new or
 * changed on one side goes to the other; a file deleted on one side and unchanged on the other is
 * deleted there; a file changed on both sides (or new on both with different content) keeps both:
 * the local version keeps the name on both sides and the cloud version becomes
 * `name.conflict-<time>.ext` on both sides. A change always beats a deletion, and without a
 * snapshot (the first run) nothing is deleted. Sizes and times only tell whether a side changed
 * since the snapshot; where both did (or there is none), only equal content makes the two alike.
 * Per-file failures are reported and counted. What the run made or found alike goes to `known`.
 */
export async function twoWaySync(
  local: SyncTree,
  cloud: SyncTree,
  snapshot: AsyncIterable<SnapshotEntry>,
  startedAt: number,
  report: SyncReport,
  known: KnownAlike,
): Promise<TwoWayStats> {
  const stats: TwoWayStats = {
    checked: 0,
    uploaded: 0,
    downloaded: 0,
    deletedLocal: 0,
    deletedCloud: 0,
    conflicts: 0,
    skipped: 0,
    failed: 0,
    bytes: 0,
  };
  const pool = new Pool(TRANSFERS);
  const signal = report.signal;
  let done = 0;
  const step = (info: string) => {
    done++;
    report.progress(done, stats.checked, info);
    report.stats({ ...stats });
  };
  /** `work` may say what it did instead of `what`. */
  const run = (path: string, what: string, work: () => Promise<string | void>) =>
    pool.add(async () => {
      try {
        report.checkpoint();
        const did = await work();
        step(`${did ?? what} '${path}'`);
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
      known.add(l.path, l.size, l.mtimeMs, l.mtimeMs);
    });
  const download = (c: TreeEntry) =>
    run(c.path, 'downloaded', async () => {
      stats.bytes += (await local.write(c, cloud, signal)).size;
      stats.downloaded++;
      known.add(c.path, c.size, c.mtimeMs, c.mtimeMs);
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
  /** Both sides changed (or are new): alike if their bytes are, else both versions are kept. */
  const reconcile = (l: TreeEntry, c: TreeEntry) =>
    run(l.path, 'kept both versions of', async () => {
      if (await sameContent(local, l, cloud, c, signal)) {
        stats.skipped++;
        known.add(l.path, l.size, l.mtimeMs, c.mtimeMs);
        return 'same on both sides';
      }
      const copy = { ...c, path: await freeConflictPath(c.path) };
      await local.write(copy, cloud, signal);
      await cloud.write(copy, cloud, signal);
      stats.bytes += (await cloud.write(l, local, signal)).size + 2 * c.size;
      stats.conflicts++;
      known.add(copy.path, c.size, c.mtimeMs, c.mtimeMs);
      known.add(l.path, l.size, l.mtimeMs, l.mtimeMs);
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
    const priorOf = snapshotCursor(snapshot);
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
      const prior = await priorOf(path);
      stats.checked++;
      if (l && c) {
        const lc = !prior || changed(l, prior.size, prior.localMtime);
        const cc = !prior || changed(c, prior.size, prior.cloudMtime);
        if (!lc && !cc) {
          stats.skipped++;
          step(`unchanged '${path}'`);
        } else if (lc && !cc) await upload(l);
        else if (!lc && cc) await download(c);
        else await reconcile(l, c);
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

/**
 * The files both sides now hold alike: the snapshot the next sync compares against. A pair of
 * today's listings is alike when both sides are as the last snapshot saw them, or as this run
 * left them (`known`); otherwise (a file changed while the run went on, or more pairs than are
 * remembered) only when their content is the same. Times alone never make a pair alike.
 */
export async function* matchingPairs(
  local: SyncTree,
  cloud: SyncTree,
  snapshot: AsyncIterable<SnapshotEntry>,
  known: KnownAlike,
  signal: AbortSignal,
): AsyncGenerator<SnapshotEntry> {
  const priorOf = snapshotCursor(snapshot);
  for await (const [l, c] of mergeByPath(local.entries(false)[Symbol.asyncIterator](), cloud.entries(false)[Symbol.asyncIterator]())) {
    if (!l || !c || l.size !== c.size || l.problem || c.problem) continue;
    const prior = await priorOf(l.path);
    const made = known.get(l.path);
    const alike =
      unchangedSince(prior, l, c) ||
      (made !== undefined &&
        made.size === l.size &&
        (await atTime(local, l, made.localMtime)) &&
        (await atTime(cloud, c, made.cloudMtime))) ||
      (await sameContent(local, l, cloud, c, signal));
    if (alike) yield { path: l.path, size: l.size, localMtime: l.mtimeMs, cloudMtime: c.mtimeMs };
  }
}

/** Whether a listed file still has the time it was given or seen with (an S3 listing's upload time: the file's own is looked up). */
async function atTime(tree: SyncTree, e: TreeEntry, mtimeMs: number): Promise<boolean> {
  if (Math.abs(e.mtimeMs - mtimeMs) < TIME_TOLERANCE_MS) return true;
  if (!e.approximateTime) return false;
  const exact = await tree.exactTime?.(e);
  return exact !== undefined && Math.abs(exact - mtimeMs) < TIME_TOLERANCE_MS;
}
