import { AppError } from '../lib/errors.ts';
import type { JobContext } from '../jobs/actions.ts';
import { CancelledError } from '../jobs/context.ts';
import { compileFilters } from './filters.ts';
import { emptyStats, type SyncFilter, type SyncMode, type SyncOptions, type SyncStats } from './models.ts';
import { Pool } from '../lib/pool.ts';
import { listBoth, mergeByPath, sha256Of, type SyncTree, type TreeEntry } from './tree.ts';

export interface SyncSettings {
  mode: SyncMode;
  filters: SyncFilter[];
  options: SyncOptions;
  /** Only these paths (a retry of the files that failed); nothing is deleted then. */
  only?: ReadonlySet<string>;
  transfers?: number;
  checkers?: number;
  /**
   * Whether a pair present on both sides is known alike without reading it (both sides unchanged
   * since a snapshot that had them alike); asked in byte order of the paths. Such a pair is skipped.
   */
  unchanged?: (s: TreeEntry, d: TreeEntry) => Promise<boolean>;
  /** Told of each pair the run made or found to hold the same content, with each side's time. */
  alike?: (path: string, size: number, srcMtimeMs: number, dstMtimeMs: number) => void;
}

/** What a sync tells while it runs (a job's context, or a plain logger in tests). */
export type SyncReport = Pick<JobContext, 'signal' | 'progress' | 'stats' | 'log' | 'error' | 'checkpoint'>;

export const DEFAULT_TRANSFERS = 8;
export const DEFAULT_CHECKERS = 16;
/** Modification times this close are the same (file systems and S3 keep different precisions). */
export const TIME_TOLERANCE_MS = 1;

/**
 * Whether two files' modification times agree (within 1 ms). Listings of S3 give the upload time,
 * so where they differ the file's own time (kept in metadata) of such a side is looked up.
 */
export async function sameTime(aTree: SyncTree, a: TreeEntry, bTree: SyncTree, b: TreeEntry): Promise<boolean> {
  let at = a.mtimeMs;
  let bt = b.mtimeMs;
  if (Math.abs(at - bt) >= TIME_TOLERANCE_MS && b.approximateTime) bt = (await bTree.exactTime?.(b)) ?? bt;
  if (Math.abs(at - bt) >= TIME_TOLERANCE_MS && a.approximateTime) at = (await aTree.exactTime?.(a)) ?? at;
  return Math.abs(at - bt) < TIME_TOLERANCE_MS;
}

type Verdict = 'copy' | 'update' | 'skip';

/**
 * Syncs one destination from one source: copies what is missing or differs, deletes what the
 * source lacks when asked to (after every copy succeeded, and never more than `maxDelete`), and
 * returns the counts. Per-file failures are reported and counted; they do not stop the run, but
 * for the tenant's quota refusing a file: every file after it would be refused too, so the run
 * ends with that refusal (thrown) once the copies under way are done. A cancel stops it between
 * files; a copy cut short leaves nothing at the destination.
 */
export async function syncTree(
  src: SyncTree,
  dst: SyncTree,
  settings: SyncSettings,
  report: SyncReport,
  totals: SyncStats = emptyStats(),
): Promise<SyncStats> {
  const stats = emptyStats();
  // Counted here, told to the job once per file (at `step`): a report per counter is costly on a re-sync (docs/DECISIONS.md, "Figures behind code comments").
  const count = (field: keyof SyncStats, n = 1) => {
    stats[field] += n;
    totals[field] += n;
  };
  const { mode, options } = settings;
  const dryRun = options.dryRun === true;
  const passes = compileFilters(settings.filters);
  const transfers = new Pool(settings.transfers ?? DEFAULT_TRANSFERS);
  const checkers = new Pool(settings.checkers ?? DEFAULT_CHECKERS);
  const deletions: TreeEntry[] = [];
  const wantDirs = options.noEmptyDirectories !== true;
  let seen = 0;
  let done = 0;
  const step = (info: string) => {
    done++;
    report.progress(done, seen, info);
    report.stats({ ...totals });
  };
  let refused: AppError | undefined;
  const fileFailed = (path: string, err: unknown) => {
    if (err instanceof CancelledError || report.signal.aborted) return;
    if (err instanceof AppError && err.kind === 'insufficient_storage') refused ??= err;
    count('failed');
    report.error(`${(err as Error).message}`, path);
  };

  const copy = async (entry: TreeEntry, verdict: 'copy' | 'update') => {
    if (dryRun) {
      report.log(`would ${verdict} '${entry.path}' (${entry.size} bytes)`);
      count(verdict === 'copy' ? 'copied' : 'updated');
      count('bytes', entry.size);
      return step(`would ${verdict} '${entry.path}'`);
    }
    await transfers.add(async () => {
      // Queued before a refusal: not written after it.
      if (refused) return;
      try {
        report.checkpoint();
        const written = await dst.write(entry, src, report.signal);
        if (entry.size >= 0 && written.size !== entry.size)
          throw new Error(`copied ${written.size} bytes but the source has ${entry.size} (it changed while being copied?)`);
        settings.alike?.(entry.path, written.size, entry.mtimeMs, entry.mtimeMs);
        count(verdict === 'copy' ? 'copied' : 'updated');
        count('bytes', written.size);
        step(`${verdict === 'copy' ? 'copied' : 'updated'} '${entry.path}'`);
      } catch (err) {
        fileFailed(entry.path, err);
        step(`failed '${entry.path}'`);
      }
    });
  };

  const alike = (s: TreeEntry, d: TreeEntry): 'skip' => {
    settings.alike?.(s.path, d.size, s.mtimeMs, d.mtimeMs);
    return 'skip';
  };

  /** Whether a file present on both sides must be copied again. */
  const compare = async (s: TreeEntry, d: TreeEntry): Promise<Verdict> => {
    if (mode.type === 'Full') return 'update';
    // What the trees know without reading: a content hash on both sides, or the source's version token.
    if (s.hash && d.hash) return s.hash === d.hash ? alike(s, d) : 'update';
    if (s.tag !== undefined && d.tag !== undefined) return s.tag === d.tag ? 'skip' : 'update';
    if (!mode.includeSize && !mode.includeModTime) {
      if (s.size >= 0 && s.size !== d.size) return 'update';
      const [a, b] = await Promise.all([sha256Of(src, s, report.signal), sha256Of(dst, d, report.signal)]);
      return a === b ? alike(s, d) : 'update';
    }
    // A size of -1 or a time of NaN: the source does not say (a manifest entry without them).
    if (mode.includeSize && s.size >= 0 && s.size !== d.size) return 'update';
    if (mode.includeModTime) {
      if (Number.isNaN(s.mtimeMs)) return 'update';
      if (!(await sameTime(src, s, dst, d))) return 'update';
    }
    return 'skip';
  };

  const { source, dest } = await listBoth(src, dst, wantDirs);
  try {
    await plan();
  } finally {
    // Also on a cancel: the job ends only once no copy is still writing.
    await checkers.drain();
    await transfers.drain();
  }
  report.stats({ ...totals });
  if (refused) throw refused;
  report.checkpoint();

  if (deletions.length > 0) await deleteExtra(dst, deletions, settings, stats, report, count, totals);
  return stats;

  async function plan(): Promise<void> {
    for await (const [s, d] of mergeByPath(source, dest)) {
      report.checkpoint();
      if (refused) return;
      if (s && settings.only && !settings.only.has(s.path)) continue;
      if (d?.problem && !s) continue;
      if (s?.problem) {
        fileFailed(s.path, new Error(s.problem));
        continue;
      }
      if (!s) {
        // A file the filters leave out is not the sync's to delete.
        if (options.delete && !settings.only && !d!.emptyDir && passes(d!)) deletions.push(d!);
        continue;
      }
      if (s.emptyDir) {
        if (!d && !dryRun) await dst.makeDir?.(s.path).catch((err: unknown) => fileFailed(s.path, err));
        continue;
      }
      if (!passes(s)) continue;
      seen++;
      count('checked');
      if (!d || d.emptyDir) {
        await copy(s, 'copy');
        continue;
      }
      if (settings.unchanged && (await settings.unchanged(s, d))) {
        count('skipped');
        step(`unchanged '${s.path}'`);
        continue;
      }
      const needsLook = mode.type === 'Diff' && ((!mode.includeSize && !mode.includeModTime) || s.approximateTime || d.approximateTime);
      if (!needsLook) {
        const verdict = await compare(s, d);
        if (verdict === 'skip') {
          count('skipped');
          step(`unchanged '${s.path}'`);
        } else await copy(s, verdict);
        continue;
      }
      await checkers.add(async () => {
        try {
          const verdict = await compare(s, d);
          if (verdict === 'skip') {
            count('skipped');
            step(`unchanged '${s.path}'`);
          } else await copy(s, verdict);
        } catch (err) {
          fileFailed(s.path, err);
          step(`failed '${s.path}'`);
        }
      });
    }
  }
}

async function deleteExtra(
  dst: SyncTree,
  deletions: TreeEntry[],
  settings: SyncSettings,
  stats: SyncStats,
  report: SyncReport,
  count: (field: keyof SyncStats, n?: number) => void,
  totals: SyncStats,
): Promise<void> {
  const { maxDelete, dryRun } = settings.options;
  // As rclone does: a run where a file failed (here, or listing the source) deletes nothing: the source may have been misread.
  if (stats.failed > 0 || totals.failed > 0) {
    report.log(`not deleting ${deletions.length} files at the destination: ${totals.failed} files failed`, 'warn');
    return;
  }
  if (maxDelete !== undefined && deletions.length > maxDelete) {
    throw new MaxDeleteExceeded(`${deletions.length} files would be deleted, more than maxDelete (${maxDelete}); nothing was deleted`);
  }
  const pool = new Pool(settings.transfers ?? DEFAULT_TRANSFERS);
  try {
    await deleteAll();
  } finally {
    await pool.drain();
  }
  report.stats({ ...totals });

  async function deleteAll(): Promise<void> {
    for (const d of deletions) {
      report.checkpoint();
      if (dryRun) {
        report.log(`would delete '${d.path}'`);
        count('deleted');
        continue;
      }
      await pool.add(async () => {
        try {
          await dst.remove(d);
          count('deleted');
        } catch (err) {
          count('failed');
          report.error(`could not delete: ${(err as Error).message}`, d.path);
        }
      });
    }
  }
}

export class MaxDeleteExceeded extends Error {
  override name = 'MaxDeleteExceeded';
}
