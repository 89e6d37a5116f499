import { randomUUID } from 'node:crypto';
import { constants, lstatSync, utimesSync, type WriteStream } from 'node:fs';
import { copyFile, lstat, mkdir, open, readdir, realpath, rename, rm, utimes, type FileHandle } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { pump } from '../lib/streams.ts';
import { BackendError } from './backendError.ts';
import {
  assertKeyInside,
  type Backend,
  type BackendEntry,
  type ByteRange,
  type ListOptions,
  type Put,
  type PutOptions,
} from './backend.ts';
import { walkDirectory, WALK_BAD_NAME, WALK_EMPTY_DIR, WALK_FILE, writeSmallFile } from './fsThreads.ts';
import { isMissing, utimesSeconds } from './fsWork.ts';
import { RESERVED_DIR } from './layout.ts';
import { WriteBehindStream } from './writeBehind.ts';
import { withHold } from './writeHolds.ts';

/**
 * What a file being streamed may buffer: chunks that arrive while one write is under way go down
 * together in the next (one thread-pool trip for many network chunks).
 */
const WRITE_BUFFER = 1024 * 1024;

/** Files are read in chunks of this size: fewer thread-pool trips and socket writes than the default 64 KiB. */
const READ_CHUNK = 1024 * 1024;

/** Files copied whole by the small-file writer (`writeSmallFile`; with the native module a copy holds up its pool thread for about a millisecond per MiB). */
const SMALL_COPY = 1024 * 1024;

/** Files being written, renamed over their target when complete: `<root>/.yunji/partial/`. */
const PARTIAL_DIR = join(RESERVED_DIR, 'partial');

/** Opens a file for reading, failing (ELOOP) where its last component is a symlink. */
const READ_NOFOLLOW = constants.O_RDONLY | constants.O_NOFOLLOW;

/**
 * A directory on this machine. Keys never leave it: `..` and `.` segments are refused, and no
 * symlink inside the root is followed, wherever it points: every directory a key goes through must
 * resolve to itself, a file is opened with O_NOFOLLOW and looked at with lstat
 * (a symlink there is a file that is not there), and listings leave symlinks out. Files are written
 * to a partial file renamed over the key, which replaces a symlink there instead of writing through it.
 */
export class LocalBackend implements Backend {
  private realRoot: string | undefined;
  /** The root as an absolute path, symlinks (of the operator's) not resolved. */
  private readonly base: string;
  /** Directories already proven to be inside the root with no symlink on the way. */
  private readonly verified = new Set<string>();
  /** Directories being made and checked now: concurrent writes into a new folder share one check. */
  private readonly ensuring = new Map<string, Promise<void>>();

  constructor(readonly root: string) {
    this.base = resolve(root);
  }

  describe(): string {
    return `local directory ${this.root}`;
  }

  private pathOf(key: string): string {
    assertKeyInside(key);
    // A backslash would be a separator on Windows.
    if (key.includes('\\')) throw new BackendError(`'${key}' is not a path inside the space`, 'invalid_path');
    return join(this.base, ...key.split('/').filter((s) => s !== ''));
  }

  private async rootReal(): Promise<string> {
    if (this.realRoot === undefined) {
      await mkdir(this.base, { recursive: true });
      this.realRoot = await realpath(this.base);
    }
    return this.realRoot;
  }

  /** Throws unless `dir` (which exists) is inside the root and reached through no symlink: it resolves to itself. */
  private async checkInside(dir: string): Promise<void> {
    if (this.verified.has(dir)) return;
    const root = await this.rootReal();
    const rel = relative(this.base, dir);
    const real = await realpath(dir);
    if (real !== join(root, rel))
      throw new BackendError(`'${rel}' goes through a symbolic link; a space never follows one`, 'invalid_path');
    if (this.verified.size > 10_000) this.verified.clear();
    this.verified.add(dir);
  }

  /**
   * Creates `dir` (once: a directory already checked is taken to still exist) and checks it. Missing
   * folders are made one at a time, each below a checked one, so none is made through a symlink.
   */
  private ensureDir(dir: string): Promise<void> {
    if (this.verified.has(dir)) return Promise.resolve();
    let ensuring = this.ensuring.get(dir);
    if (!ensuring) {
      ensuring = this.createChecked(dir).finally(() => this.ensuring.delete(dir));
      this.ensuring.set(dir, ensuring);
    }
    return ensuring;
  }

  private async createChecked(dir: string): Promise<void> {
    await this.rootReal();
    try {
      return await this.checkInside(dir);
    } catch (err) {
      if (!isMissing(err)) throw err;
    }
    if (dir === this.base) await mkdir(dir, { recursive: true });
    else {
      await this.ensureDir(dirname(dir));
      await mkdir(dir).catch((err: unknown) => {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      });
    }
    await this.checkInside(dir);
  }

  /**
   * Runs `op` once the directories of `paths` exist; if one has gone since it was checked (removed
   * behind our back), makes them again and retries once.
   */
  private async inDir<T>(paths: string | string[], op: () => Promise<T>): Promise<T> {
    const dirs = [...new Set((Array.isArray(paths) ? paths : [paths]).map((p) => dirname(p)))];
    for (const dir of dirs) await this.ensureDir(dir);
    try {
      return await op();
    } catch (err) {
      // Every operation that met the missing directory retries (not only the first to notice).
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      for (const dir of dirs) {
        this.verified.delete(dir);
        await this.ensureDir(dir);
      }
      return op();
    }
  }

  put(key: string, source: Readable | Buffer, options: PutOptions = {}): Promise<Put> {
    // Every sweeper stays off its partial file while it writes, however long that takes.
    return withHold(() => this.write(key, source, options));
  }

  private async write(key: string, source: Readable | Buffer, options: PutOptions): Promise<Put> {
    const path = this.pathOf(key);
    // A scratch key is written where it is; anything else through a partial file renamed over it.
    const partial = options.scratch ? path : join(this.base, PARTIAL_DIR, randomUUID());
    try {
      if (Buffer.isBuffer(source)) {
        const { replaced } = await this.inDir([partial, path], () =>
          writeSmallFile({ partial, target: path, bytes: source, mtimeMs: options.mtimeMs }),
        );
        return { size: source.length, replaced: options.scratch ? undefined : replaced };
      }
      const out = await this.inDir(partial, () => opened(new WriteBehindStream(partial, { flags: 'wx', highWaterMark: WRITE_BUFFER })));
      await pump(source, out);
      if (options.mtimeMs !== undefined) await setTime(partial, options.mtimeMs);
      const replaced = options.reportReplaced && partial !== path ? lstatSync(path, { throwIfNoEntry: false }) !== undefined : undefined;
      if (partial !== path) await this.inDir(path, () => rename(partial, path));
      return { size: out.bytesWritten, replaced };
    } catch (err) {
      // The small-file writer leaves nothing behind itself; a stream may have left a part.
      if (!Buffer.isBuffer(source)) await rm(partial, { force: true }).catch(() => undefined);
      throw localError(err, key);
    }
  }

  /** The path of `key`'s file, its folders checked; the file itself may be a symlink, which `putFile` (the copier) refuses. */
  async localFile(key: string): Promise<string> {
    const path = this.pathOf(key);
    await this.checkInside(dirname(path)).catch((err: unknown) => Promise.reject(localError(err, key)));
    return path;
  }

  putFile(key: string, source: string, options: PutOptions = {}): Promise<{ size: number }> {
    return withHold(() => this.copyIn(key, source, options));
  }

  private async copyIn(key: string, source: string, options: PutOptions): Promise<{ size: number }> {
    const path = this.pathOf(key);
    const partial = join(this.base, PARTIAL_DIR, randomUUID());
    try {
      // Never a symlink's target. The copies below open `source` by path, so a symlink swapped in
      // after this look (by someone with access to the directory) could still be followed.
      const st = lstatSync(source, { throwIfNoEntry: false });
      if (!st?.isFile())
        throw new BackendError(
          st
            ? 'the file to copy is a symbolic link or not a regular file; a space never follows a symlink'
            : 'the file to copy does not exist',
          'not_found',
        );
      // A small file is copied, timed and moved into place by the small-file writer (one hand-off with the native module).
      if (st.size <= SMALL_COPY) {
        const { size } = await this.inDir([partial, path], () =>
          writeSmallFile({ partial, target: path, copyOf: source, mtimeMs: options.mtimeMs }),
        );
        return { size };
      }
      await this.inDir(partial, () => copyFile(source, partial));
      // The new file's inode is in memory: setting its time and reading its size synchronously
      // costs microseconds, against a thread-pool trip each (docs/DECISIONS.md).
      if (options.mtimeMs !== undefined) utimesSync(partial, Date.now() / 1000, utimesSeconds(options.mtimeMs));
      const { size } = lstatSync(partial);
      await this.inDir(path, () => rename(partial, path));
      return { size };
    } catch (err) {
      await rm(partial, { force: true }).catch(() => undefined);
      throw localError(err, key);
    }
  }

  async makeDir(key: string): Promise<void> {
    const path = this.pathOf(key);
    try {
      await this.ensureDir(path);
    } catch (err) {
      throw localError(err, key);
    }
  }

  async openFile(key: string): Promise<FileHandle> {
    const path = this.pathOf(key);
    try {
      await this.checkInside(dirname(path));
      return await open(path, READ_NOFOLLOW);
    } catch (err) {
      throw localError(err, key);
    }
  }

  async get(key: string, range?: ByteRange): Promise<Readable> {
    const handle = await this.openFile(key);
    return handle.createReadStream({ ...(range ? { start: range.start, end: range.end } : {}), highWaterMark: READ_CHUNK });
  }

  async stat(key: string): Promise<BackendEntry | undefined> {
    const path = this.pathOf(key);
    if (path === this.base) return undefined; // the root is a directory
    try {
      await this.checkInside(dirname(path));
      const st = await lstat(path);
      return st.isFile() ? { key, size: st.size, mtimeMs: st.mtimeMs } : undefined;
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw localError(err, key);
    }
  }

  async remove(key: string): Promise<void> {
    const path = this.pathOf(key);
    try {
      await this.checkInside(dirname(path));
      await rm(path, { force: true });
    } catch (err) {
      if (!isMissing(err)) throw localError(err, key);
    }
  }

  async rename(from: string, to: string): Promise<void> {
    const source = this.pathOf(from);
    const target = this.pathOf(to);
    try {
      await this.checkInside(dirname(source));
      await this.inDir(target, () => rename(source, target));
    } catch (err) {
      throw localError(err, from);
    }
  }

  async cleanup(olderThanMs: number): Promise<number> {
    const dir = join(this.base, PARTIAL_DIR);
    let removed = 0;
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      const st = await lstat(join(dir, name)).catch(() => undefined);
      if (st && st.mtimeMs < olderThanMs) {
        await rm(join(dir, name), { force: true });
        removed++;
      }
    }
    return removed;
  }

  async *list(prefix: string, options: ListOptions = {}): AsyncIterable<BackendEntry> {
    const path = this.pathOf(prefix);
    const top = await this.stat(prefix);
    if (top) {
      yield top;
      return;
    }
    try {
      await this.checkInside(path);
    } catch (err) {
      if (isMissing(err)) return;
      throw err;
    }
    yield* this.walk(path, prefix.split('/').filter(Boolean).join('/'), options.emptyDirs === true);
  }

  /**
   * Depth first, each directory's entries sorted so that keys come out in byte order. The walk runs
   * a page of entries ahead (with the native module, on a pool thread with plain system calls: a
   * directory's listing and its files' sizes and times in one hand-off), so it works while this
   * thread merges and compares.
   */
  private async *walk(dir: string, keyPrefix: string, emptyDirs: boolean): AsyncIterable<BackendEntry> {
    try {
      for await (const { keys, kinds, sizes, mtimes, notes, error } of walkDirectory(dir, keyPrefix, RESERVED_DIR, emptyDirs)) {
        for (let i = 0; i < keys.length; i++) {
          const key = keys[i]!;
          const kind = kinds[i];
          if (kind === WALK_FILE) yield { key, size: sizes[i]!, mtimeMs: mtimes[i]! };
          else if (kind === WALK_EMPTY_DIR) yield { key, size: 0, mtimeMs: mtimes[i]!, emptyDir: true };
          else if (kind === WALK_BAD_NAME)
            yield { key, size: 0, mtimeMs: 0, problem: `the name of '${key}' (bytes ${notes[i]}) is not valid UTF-8` };
          else throw localError(error, key);
        }
      }
    } catch (err) {
      throw localError(err, keyPrefix);
    }
  }
}

/** Sets a file's modification time to `mtimeMs` as exactly as a double allows (`utimesSeconds`). */
function setTime(path: string, mtimeMs: number): Promise<void> {
  return utimes(path, Date.now() / 1000, utimesSeconds(mtimeMs));
}

/** A write stream once its file is open, so a failure to create it (a missing directory) is an error here, not later in the pipeline. */
function opened(stream: WriteStream): Promise<WriteStream> {
  return new Promise((resolve, reject) => {
    stream.once('open', () => {
      stream.off('error', reject);
      resolve(stream);
    });
    stream.once('error', reject);
  });
}

function localError(err: unknown, key: string): Error {
  if (err instanceof BackendError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new BackendError(`'${key}' does not exist`, 'not_found');
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return new BackendError(`'${key}': permission denied (${code})`, 'denied');
  if (code === 'ENOSPC') return new BackendError(`the disk is full (${code})`, 'failed');
  if (code === 'EISDIR') return new BackendError(`'${key}' is a directory`, 'failed');
  if (code === 'ELOOP') return new BackendError(`'${key}' is a symbolic link; a space never follows one`, 'not_found');
  if (code === 'EEXIST' || code === 'ENOTDIR') return new BackendError(`a file is in the way of '${key}' (${code})`, 'failed');
  return err as Error;
}
