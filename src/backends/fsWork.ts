/**
 * Small local file system work, as a local space needs it: small files written whole, and trees
 * walked a page at a time. Two implementations keep this contract: Yunji's optional native module
 * (`fsNative.ts`) and pure Node (`fsPortable.ts`); `fsThreads.ts` chooses one at start-up. Their
 * results, order and errors are the same (`test/backends/fsWork.test.ts` runs one suite on both).
 */
export interface FsWork {
  /**
   * Writes `file` whole: creates `partial` exclusively, writes `bytes` into it (or copies `copyOf`,
   * permissions included), gives it `mtimeMs`, and moves it to `target`. Rejects with the file
   * system's error as Node reports it (`code`, and a message naming the call and the paths) and
   * leaves no partial file; a `partial` that was already there is never touched.
   */
  writeSmallFile(file: SmallFile): Promise<SmallFileWritten>;
  /**
   * Walks `dir` depth first (leaving out directories named `skip`, following no symlinks), in byte
   * order of the keys (`key` joined with the relative path; a folder sorts as its name and '/'), up
   * to 1,000 entries a page. A missing `dir` is an empty walk; a `dir` that cannot be listed rejects
   * with the file system's error; a folder further down that cannot be listed is a WALK_ERROR entry,
   * the walk's last. Names that are not UTF-8 come out as Node's Buffer.toString shows them, as
   * WALK_BAD_NAME entries (not descended into). With `emptyDirs`, a folder with nothing listed in it
   * is a WALK_EMPTY_DIR entry, its key ending in '/'. A walk left early lets go of what it holds.
   */
  walkDirectory(dir: string, key: string, skip: string, emptyDirs: boolean): AsyncGenerator<WalkPage>;
}

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

/** A file system error's fields, as Node gives them, for the thread that asked to make the error again. */
export interface FsFailure {
  message: string;
  code: string;
  errno?: number;
  syscall?: string;
  path?: string;
  dest?: string;
}

/** The file system's error as Node makes them (`code`, and `errno`, `syscall`, `path`, `dest` where given). */
export function errorOf(f: FsFailure): Error & { code: string } {
  const err = Object.assign(new Error(f.message), { code: f.code }) as Error & NodeJS.ErrnoException & { code: string; dest?: string };
  if (f.errno !== undefined) err.errno = f.errno;
  if (f.syscall !== undefined) err.syscall = f.syscall;
  if (f.path !== undefined) err.path = f.path;
  if (f.dest !== undefined) err.dest = f.dest;
  return err;
}

/** A walk's page as it crosses from another thread: its keys joined by NUL (one string crosses over faster than a thousand). */
export interface PackedWalkPage {
  count: number;
  keys: string;
  kinds: Uint8Array;
  sizes: Float64Array;
  mtimes: Float64Array;
  notes: Record<number, string>;
  error?: FsFailure;
  done: boolean;
}

/** A packed page as the walk's reader takes it. */
export function unpackWalkPage(p: PackedWalkPage): PageOfWalk {
  return {
    page: {
      keys: p.count > 0 ? p.keys.split('\0') : [],
      kinds: p.kinds,
      sizes: p.sizes,
      mtimes: p.mtimes,
      notes: p.notes,
      error: p.error && errorOf(p.error),
    },
    done: p.done,
  };
}

/** A page, and whether it is the walk's last. */
export interface PageOfWalk {
  page: WalkPage;
  done: boolean;
}

/** Entries a walk puts in one page. */
export const WALK_PAGE = 1000;

/**
 * The pages `next` makes, each asked for as soon as the one before it is handed over, so the next
 * is being made while its reader works; `stop` is called when the reader leaves before the end.
 */
export async function* readAhead(next: () => Promise<PageOfWalk>, stop: () => void): AsyncGenerator<WalkPage> {
  let coming: Promise<PageOfWalk> | undefined = next();
  try {
    while (coming) {
      const { page, done }: PageOfWalk = await coming;
      coming = done ? undefined : next();
      coming?.catch(() => undefined); // an error is thrown where the page is reached
      if (page.keys.length > 0) yield page;
    }
  } finally {
    if (coming) stop();
  }
}

/** Whether a file system error says the path is not there (a missing file, or a file where a folder was expected). */
export function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/**
 * A time in seconds as `fs.utimes` takes it, as exactly as a double allows: a negative number would
 * mean "now" to Node, a numeric string does not (a Date would drop the sub-millisecond part).
 */
export function utimesSeconds(ms: number): number | string {
  return ms < 0 ? String(ms / 1000) : ms / 1000;
}
