import { isUtf8 } from 'node:buffer';
import { constants, stat as statByCallback, type Stats } from 'node:fs';
import { copyFile, link, open, readdir, rename, stat, unlink, utimes } from 'node:fs/promises';
import {
  isMissing,
  readAhead,
  WALK_BAD_NAME,
  WALK_EMPTY_DIR,
  WALK_ERROR,
  WALK_FILE,
  WALK_PAGE,
  type FsWork,
  type PageOfWalk,
  type SmallFile,
  type SmallFileWritten,
  type WalkPage,
} from './fsWork.ts';

/**
 * The small file system work in pure Node (`fs.promises`), for where the native module is not built
 * (or `YUNJI_NATIVE=off`): the same steps, results, order and errors as native/fs-work/fs_work.cc,
 * each step its own call on libuv's thread pool.
 */
export const portableFs: FsWork = { writeSmallFile, walkDirectory };

/** Files whose stats one walk asks for at once: enough to keep the pool busy, not enough to queue every other request's work behind one big folder. */
const STATS_AT_ONCE = 16;

/** A file handle's error names no path; the native module's, and Node's calls by path, do. */
function withPath(err: unknown, path: string): unknown {
  const e = err as NodeJS.ErrnoException;
  if (e instanceof Error && e.path === undefined && e.syscall !== undefined && e.message.endsWith(`, ${e.syscall}`)) {
    e.message += ` '${path}'`;
    e.path = path;
  }
  return err;
}

/** A time in seconds as fs.utimes takes it: a negative number would mean "now", a numeric string does not. */
function secondsOf(ms: number): number | string {
  return ms < 0 ? String(ms / 1000) : ms / 1000;
}

async function writeSmallFile(file: SmallFile): Promise<SmallFileWritten> {
  const { partial, target, copyOf, mtimeMs } = file;
  let created = false;
  try {
    let size: number;
    if (copyOf !== undefined) {
      // libuv's copy creates the file exclusively with the source's permissions (umask or not), and
      // removes it again if the copy fails.
      await copyFile(copyOf, partial, constants.COPYFILE_EXCL);
      created = true;
      if (mtimeMs !== undefined) await utimes(partial, Date.now() / 1000, secondsOf(mtimeMs));
      size = (await stat(partial)).size;
    } else {
      size = await writeNew(partial, file.bytes!, mtimeMs);
      created = true;
    }
    // A copy (a sync's) only needs to land whole; one rename is one metadata change fewer than link and unlink.
    if (copyOf !== undefined) await rename(partial, target);
    else if (partial !== target) return { replaced: await linkOrReplace(partial, target), size };
    return { replaced: false, size };
  } catch (err) {
    if (created) await unlink(partial).catch(() => undefined);
    throw err;
  }
}

/** Creates `path` exclusively with `bytes` and `mtimeMs`; removes it if that fails after it was made. */
async function writeNew(path: string, bytes: Uint8Array, mtimeMs: number | undefined): Promise<number> {
  const handle = await open(path, 'wx');
  let closing = false;
  try {
    await handle.writeFile(bytes);
    if (mtimeMs !== undefined) await handle.utimes(Date.now() / 1000, secondsOf(mtimeMs));
    closing = true;
    await handle.close();
  } catch (err) {
    if (!closing) await handle.close().catch(() => undefined);
    await unlink(path).catch(() => undefined);
    throw withPath(err, path);
  }
  return bytes.length;
}

/**
 * Moves `partial` to `target`, and tells whether a file was there. A link is made only where no
 * file is, so of two writers of one name exactly one hears it was new; where one is (or the file
 * system has no hard links), a rename replaces it.
 */
async function linkOrReplace(partial: string, target: string): Promise<boolean> {
  try {
    await link(partial, target);
    await unlink(partial).catch(() => undefined);
    return false;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EEXIST' && code !== 'EPERM' && code !== 'ENOTSUP') throw err;
    const replaced =
      code === 'EEXIST' ||
      (await stat(target).then(
        () => true,
        () => false,
      ));
    await rename(partial, target);
    return replaced;
  }
}

// ---------------------------------------------------------------------------------------------
// Walks.

interface Item {
  /** As JavaScript shows it. */
  name: string;
  /** The bytes it sorts by (the name's UTF-8, and '/' for a folder), one character per byte. */
  order: string;
  file: boolean;
  /** The name's bytes in hex where they are not UTF-8. */
  badHex?: string;
  size: number;
  mtimeMs: number;
  /** Why the file cannot be looked at where its folder could be listed (its path is too long). */
  error?: Error & { code: string };
}

interface Level {
  dir: string;
  key: string;
  items: Item[];
  next: number;
}

/** A file's stats: the walk's one call per file, made by callback, which costs the main thread less than fs.promises (docs/DECISIONS.md). */
const statOf = (path: string) =>
  new Promise<Stats>((resolve, reject) => statByCallback(path, (err, st) => (err ? reject(err) : resolve(st))));

/**
 * A directory's files and folders (nothing else: no symlinks), folders named `skip` left out, each
 * file with its size and time, sorted by bytes; a file gone or turned into something else since
 * the listing is left out. Rejects with readdir's error.
 *
 * The native module looks at each file relative to its open folder; Node can only go by the whole
 * path, which may be too long (ENAMETOOLONG) for a file in a folder whose own path is not: such a
 * file keeps its error, and the walk ends there (docs/DECISIONS.md).
 */
async function listDirectory(dir: string, skip: string, stopped: () => boolean): Promise<Item[]> {
  const entries = await readdir(dir, { withFileTypes: true, encoding: 'buffer' });
  const items: Item[] = [];
  for (const entry of entries) {
    const file = entry.isFile();
    if (!file && !entry.isDirectory()) continue;
    const raw = entry.name;
    const name = raw.toString('utf8');
    const bad = !isUtf8(raw);
    if (!file && name === skip) continue;
    const bytes = bad ? Buffer.from(name, 'utf8') : raw;
    items.push({
      name,
      order: bytes.toString('latin1') + (file ? '' : '/'),
      file,
      badHex: bad ? raw.toString('hex') : undefined,
      size: 0,
      mtimeMs: 0,
    });
  }
  const files = items.filter((item) => item.file && item.badHex === undefined);
  const gone = new Set<Item>();
  const base = dir === '' || dir.endsWith('/') ? dir : `${dir}/`;
  let next = 0;
  const statNext = async (): Promise<void> => {
    while (next < files.length && !stopped()) {
      const item = files[next++]!;
      try {
        const st = await statOf(base + item.name);
        if (!st.isFile()) throw new Error('not a file');
        item.size = st.size;
        item.mtimeMs = st.mtimeMs;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENAMETOOLONG') item.error = err as Error & { code: string };
        else gone.add(item);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(STATS_AT_ONCE, files.length) }, statNext));
  const kept = gone.size > 0 ? items.filter((item) => !gone.has(item)) : items;
  // One character per byte: JavaScript's comparison of these strings is byte order.
  return kept.sort((a, b) => (a.order < b.order ? -1 : a.order > b.order ? 1 : 0));
}

class Walk {
  private started = false;
  private stack: Level[] = [];
  stopped = false;

  constructor(
    private readonly dir: string,
    private readonly key: string,
    private readonly skip: string,
    private readonly emptyDirs: boolean,
  ) {}

  async page(): Promise<PageOfWalk> {
    const keys: string[] = [];
    const kinds: number[] = [];
    const sizes: number[] = [];
    const mtimes: number[] = [];
    const notes: Record<number, string> = {};
    let error: (Error & { code: string }) | undefined;
    const add = (key: string, kind: number, size: number, mtimeMs: number) => {
      keys.push(key);
      kinds.push(kind);
      sizes.push(size);
      mtimes.push(mtimeMs);
    };
    const stopped = () => this.stopped;
    if (!this.started) {
      this.started = true;
      let items: Item[] = [];
      try {
        items = await listDirectory(this.dir, this.skip, stopped);
      } catch (err) {
        if (!isMissing(err)) throw err;
      }
      if (items.length > 0) this.stack.push({ dir: this.dir, key: this.key, items, next: 0 });
    }
    while (keys.length < WALK_PAGE && this.stack.length > 0 && !this.stopped) {
      const top = this.stack[this.stack.length - 1]!;
      if (top.next >= top.items.length) {
        this.stack.pop();
        continue;
      }
      const item = top.items[top.next++]!;
      const key = top.key === '' ? item.name : `${top.key}/${item.name}`;
      if (item.badHex !== undefined) {
        notes[keys.length] = item.badHex;
        add(key, WALK_BAD_NAME, 0, 0);
        continue;
      }
      if (item.error) {
        error = item.error;
        add(key, WALK_ERROR, 0, 0);
        this.stack = [];
        break;
      }
      if (item.file) {
        add(key, WALK_FILE, item.size, item.mtimeMs);
        continue;
      }
      const sub = top.dir === '' || top.dir.endsWith('/') ? top.dir + item.name : `${top.dir}/${item.name}`;
      let items: Item[];
      try {
        items = await listDirectory(sub, this.skip, stopped);
      } catch (err) {
        if (isMissing(err)) continue;
        error = err as Error & { code: string };
        add(key, WALK_ERROR, 0, 0);
        this.stack = [];
        break;
      }
      if (items.length > 0) {
        this.stack.push({ dir: sub, key, items, next: 0 });
        continue;
      }
      if (!this.emptyDirs) continue;
      // With its trailing slash the key sorts where the folder's files would.
      const st = await stat(sub).catch(() => undefined);
      if (st) add(`${key}/`, WALK_EMPTY_DIR, 0, st.mtimeMs);
    }
    if (this.stopped) this.stack = [];
    return {
      page: { keys, kinds: Uint8Array.from(kinds), sizes: Float64Array.from(sizes), mtimes: Float64Array.from(mtimes), notes, error },
      done: this.stack.length === 0,
    };
  }
}

function walkDirectory(dir: string, key: string, skip: string, emptyDirs: boolean): AsyncGenerator<WalkPage> {
  const walk = new Walk(dir, key, skip, emptyDirs);
  return readAhead(
    () => walk.page(),
    () => {
      walk.stopped = true;
    },
  );
}
