import { createRequire } from 'node:module';

/**
 * Small local file system work on libuv's thread pool, one hand-off each, done by Yunji's native
 * module (native/fs-work) with plain system calls: a batch of small files written whole (each opened
 * as a partial file, written or copied from another file, timed, closed and moved to its target), or
 * the next page of a directory walk with the size and time of each file. The same steps as
 * asynchronous `fs` calls cost the main thread a thread-pool trip each, and made synchronously they
 * would stall every request whenever the disk is slow (docs/DECISIONS.md).
 */
export interface SmallFile {
  /** A new name in the same file system as `target`, created exclusively. */
  partial: string;
  /** Where the file ends up; the same as `partial` to write in place. */
  target: string;
  /** The content, or the path of a file to copy it from (small: the copy holds up its thread). */
  bytes?: Uint8Array;
  copyOf?: string;
  /** Modification time to give the file (epoch ms). */
  mtimeMs?: number;
}

/** Whether a file was at the target before (and was replaced; not told for copies), and the size written. */
export interface SmallFileWritten {
  replaced: boolean;
  size: number;
}

/** Kinds of a walk's entries. */
export const WALK_FILE = 0;
export const WALK_EMPTY_DIR = 1;
export const WALK_BAD_NAME = 2;
/** A folder that cannot be listed: the walk's last entry. */
export const WALK_ERROR = 3;

interface FsFailure {
  message: string;
  code: string;
}

/** Entries of a walk in byte order of their keys: entry i is `keys[i]`, `kinds[i]`, `sizes[i]`, `mtimes[i]`. */
export interface WalkPage {
  keys: string[];
  kinds: Uint8Array;
  sizes: Float64Array;
  mtimes: Float64Array;
  /** A bad name's bytes in hex, by entry. */
  notes: Record<number, string>;
  /** The WALK_ERROR entry's error. */
  error?: Error & { code: string };
}

/** Up to 1,000 entries, the keys joined by NUL (one string crosses over faster than a thousand). */
interface NativePage {
  count: number;
  keys: string;
  kinds: Uint8Array;
  sizes: Float64Array;
  mtimes: Float64Array;
  notes: Record<number, string>;
  error?: FsFailure;
  done: boolean;
}

declare const walkBrand: unique symbol;
type NativeWalk = { readonly [walkBrand]: true };

interface FsWork {
  writeFiles(files: SmallFile[], done: (results: ({ replaced: boolean; size: number; error?: undefined } | { error: FsFailure })[]) => void): void;
  walkOpen(dir: string, key: string, skip: string, emptyDirs: boolean): NativeWalk;
  walkNext(walk: NativeWalk, done: (error: FsFailure | undefined, page: NativePage | undefined) => void): void;
  walkStop(walk: NativeWalk): void;
}

const fsWork = createRequire(import.meta.url)('yunji-fs-work') as FsWork;

/** The file system's error as Node makes them (its `code` kept). */
const errorOf = (f: FsFailure) => Object.assign(new Error(f.message), { code: f.code });

let queued: { file: SmallFile; resolve: (w: SmallFileWritten) => void; reject: (err: Error) => void }[] = [];

/**
 * The writes of one turn of the event loop go over in one hand-off, or two when there are several:
 * waking a pool thread is most of a hand-off's cost on this kind of VM, concurrent uploads finish in
 * the same turn, and the disk creates files faster two at a time than one.
 */
function flush(): void {
  const batch = queued;
  queued = [];
  const share = Math.ceil(batch.length / 2);
  for (let i = 0; i < batch.length; i += share) {
    const part = batch.slice(i, i + share);
    fsWork.writeFiles(
      part.map((p) => p.file),
      (results) => results.forEach((r, j) => (r.error ? part[j]!.reject(errorOf(r.error)) : part[j]!.resolve({ replaced: r.replaced, size: r.size }))),
    );
  }
}

/** Writes `file` whole (its `bytes`, or a copy of `copyOf`); rejects with the file system's error (its `code` kept) and leaves no partial file. */
export function writeSmallFile(file: SmallFile): Promise<SmallFileWritten> {
  return new Promise((resolve, reject) => {
    if (queued.length === 0) setImmediate(flush);
    queued.push({ file, resolve, reject });
  });
}

function nextPage(walk: NativeWalk): Promise<NativePage> {
  return new Promise((resolve, reject) => fsWork.walkNext(walk, (error, page) => (error ? reject(errorOf(error)) : resolve(page!))));
}

/**
 * Walks `dir` depth first (leaving out directories named `skip`, following no symlinks), in byte
 * order of the keys (`key` joined with the relative path), a page ahead of its reader. A missing
 * `dir` is an empty walk; a `dir` that cannot be listed rejects with the file system's error (its
 * `code` kept); a folder further down that cannot be listed is a WALK_ERROR entry, the walk's last.
 * Names that are not UTF-8 come out as Node's Buffer.toString shows them, as WALK_BAD_NAME entries.
 */
export async function* walkDirectory(dir: string, key: string, skip: string, emptyDirs: boolean): AsyncGenerator<WalkPage> {
  const walk = fsWork.walkOpen(dir, key, skip, emptyDirs);
  let next: Promise<NativePage> | undefined = nextPage(walk);
  try {
    while (next) {
      const page: NativePage = await next;
      next = page.done ? undefined : nextPage(walk);
      next?.catch(() => undefined); // an error is thrown where the page is reached
      if (page.count > 0) {
        yield {
          keys: page.keys.split('\0'),
          kinds: page.kinds,
          sizes: page.sizes,
          mtimes: page.mtimes,
          notes: page.notes,
          error: page.error && errorOf(page.error),
        };
      }
    }
  } finally {
    // Left before its end (a cancelled sync): the walk lets go of what it holds.
    if (next) fsWork.walkStop(walk);
  }
}
