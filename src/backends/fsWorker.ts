import { isUtf8 } from 'node:buffer';
import {
  closeSync,
  constants,
  type Dirent,
  copyFileSync,
  futimesSync,
  linkSync,
  openSync,
  readdirSync,
  renameSync,
  statSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { parentPort } from 'node:worker_threads';
import {
  isMissing,
  WALK_BAD_NAME,
  WALK_EMPTY_DIR,
  WALK_ERROR,
  WALK_FILE,
  WALK_PAGE,
  type FsFailure,
  type PackedWalkPage,
  type SmallFile,
  type SmallFileWritten,
  utimesSeconds,
} from './fsWork.ts';

/**
 * The thread that does pure Node's small file work (`fsPortable.ts` starts it): synchronous calls,
 * which cost no thread-pool trip each, made here so the server's event loop never waits on the disk.
 * It answers messages in the order they come: a batch of writes, or the next page of a walk.
 */

/** What the server's thread asks. */
export type Request =
  | { op: 'write'; id: number; files: SmallFile[] }
  | { op: 'walk'; id: number; dir: string; key: string; skip: string; emptyDirs: boolean }
  | { op: 'next'; id: number }
  | { op: 'stop'; id: number };

/** Each write's outcome, by the batch's order. */
export type WriteOutcome = { ok: true; value: SmallFileWritten } | { ok: false; error: FsFailure };

/** A page of a walk, answering the request `id`. */
export interface WalkReply extends PackedWalkPage {
  id: number;
}

export type Reply = { id: number; writes: WriteOutcome[] } | WalkReply | { id: number; failed: FsFailure };

function failureOf(err: unknown): FsFailure {
  const e = err as NodeJS.ErrnoException;
  return {
    message: e.message,
    code: e.code ?? 'EIO',
    errno: e.errno,
    syscall: e.syscall,
    path: e.path,
    dest: (e as { dest?: string }).dest,
  };
}

/** A file descriptor's error names no path; the native module's, and Node's calls by path, do. */
function withPath(err: unknown, path: string): unknown {
  const e = err as NodeJS.ErrnoException;
  if (e instanceof Error && e.path === undefined && e.syscall !== undefined && e.message.endsWith(`, ${e.syscall}`)) {
    e.message += ` '${path}'`;
    e.path = path;
  }
  return err;
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // gone already, or never made
  }
}

// ---------------------------------------------------------------------------------------------
// Small files: the steps of native/fs-work/fs_work.cc, one after another.

function writeSmallFile(file: SmallFile): SmallFileWritten {
  const { partial, target, copyOf, mtimeMs } = file;
  if (copyOf !== undefined) {
    // libuv's copy creates the file exclusively with the source's permissions (umask or not), and
    // removes it again if the copy fails.
    copyFileSync(copyOf, partial, constants.COPYFILE_EXCL);
    try {
      if (mtimeMs !== undefined) utimesSync(partial, Date.now() / 1000, utimesSeconds(mtimeMs));
      const size = statSync(partial).size;
      // A copy (a sync's) only needs to land whole; one rename is one metadata change fewer than link and unlink.
      renameSync(partial, target);
      return { replaced: false, size };
    } catch (err) {
      removeQuietly(partial);
      throw err;
    }
  }
  const bytes = file.bytes!;
  const fd = openSync(partial, 'wx');
  let closed = false;
  try {
    writeFileSync(fd, bytes);
    if (mtimeMs !== undefined) futimesSync(fd, Date.now() / 1000, utimesSeconds(mtimeMs));
    closed = true;
    closeSync(fd);
  } catch (err) {
    if (!closed) {
      try {
        closeSync(fd);
      } catch {
        // the write's error is the one to report
      }
    }
    removeQuietly(partial);
    throw withPath(err, partial);
  }
  try {
    return { replaced: partial !== target && linkOrReplace(partial, target), size: bytes.length };
  } catch (err) {
    removeQuietly(partial);
    throw err;
  }
}

/**
 * Moves `partial` to `target`, and tells whether a file was there. A link is made only where no
 * file is, so of two writers of one name exactly one hears it was new; where one is (or the file
 * system has no hard links), a rename replaces it.
 */
function linkOrReplace(partial: string, target: string): boolean {
  try {
    linkSync(partial, target);
    removeQuietly(partial);
    return false;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EEXIST' && code !== 'EPERM' && code !== 'ENOTSUP') throw err;
    const replaced = code === 'EEXIST' || statSync(target, { throwIfNoEntry: false }) !== undefined;
    renameSync(partial, target);
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

/** Printable ASCII (other names take the general way). */
const ASCII = /^[ -~]*$/;

/**
 * A folder's entries, names as strings; as bytes where one came out with U+FFFD, so that a name
 * that is not UTF-8 can be told from one that holds that character.
 */
function entriesOf(dir: string): Dirent<string | Buffer>[] {
  const entries = readdirSync(dir, { withFileTypes: true });
  return entries.some((e) => e.name.includes('\uFFFD')) ? readdirSync(dir, { withFileTypes: true, encoding: 'buffer' }) : entries;
}

const byOrder = (a: Item, b: Item) => (a.order < b.order ? -1 : a.order > b.order ? 1 : 0);

/**
 * A directory's files and folders (nothing else: no symlinks), folders named `skip` left out, each
 * file with its size and time, sorted by bytes; a file gone or turned into something else since
 * the listing is left out. Throws readdir's error.
 *
 * The native module looks at each file relative to its open folder; Node can only go by the whole
 * path, which may be too long (ENAMETOOLONG) for a file in a folder whose own path is not: such a
 * file keeps its error, and the walk ends there (docs/DECISIONS.md).
 */
function listDirectory(dir: string, skip: string): Item[] {
  const base = dir === '' || dir.endsWith('/') ? dir : `${dir}/`;
  const items: Item[] = [];
  for (const entry of entriesOf(dir)) {
    const file = entry.isFile();
    if (!file && !entry.isDirectory()) continue;
    const raw = entry.name;
    const name = typeof raw === 'string' ? raw : raw.toString('utf8');
    const bad = typeof raw !== 'string' && !isUtf8(raw);
    if (!file && name === skip) continue;
    // An ASCII name's UTF-8 bytes are its characters.
    const order = ASCII.test(name) ? name : Buffer.from(name, 'utf8').toString('latin1');
    const item: Item = {
      name,
      order: file ? order : `${order}/`,
      file,
      badHex: bad ? (raw as Buffer).toString('hex') : undefined,
      size: 0,
      mtimeMs: 0,
    };
    if (file && !bad) {
      try {
        const st = statSync(base + name, { throwIfNoEntry: false });
        if (!st?.isFile()) continue;
        item.size = st.size;
        item.mtimeMs = st.mtimeMs;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENAMETOOLONG') continue;
        item.error = err as Error & { code: string };
      }
    }
    items.push(item);
  }
  // One character per byte: JavaScript's comparison of these strings is byte order.
  return items.sort(byOrder);
}

class Walk {
  private started = false;
  private stack: Level[] = [];

  constructor(
    private readonly id: number,
    private readonly dir: string,
    private readonly key: string,
    private readonly skip: string,
    private readonly emptyDirs: boolean,
  ) {}

  /** The next page; throws where the walk's own folder cannot be listed. */
  page(): WalkReply {
    const keys: string[] = [];
    const kinds = new Uint8Array(WALK_PAGE);
    const sizes = new Float64Array(WALK_PAGE);
    const mtimes = new Float64Array(WALK_PAGE);
    const notes: Record<number, string> = {};
    let error: FsFailure | undefined;
    const add = (key: string, kind: number, size: number, mtimeMs: number) => {
      kinds[keys.length] = kind;
      sizes[keys.length] = size;
      mtimes[keys.length] = mtimeMs;
      keys.push(key);
    };
    if (!this.started) {
      this.started = true;
      let items: Item[] = [];
      try {
        items = listDirectory(this.dir, this.skip);
      } catch (err) {
        if (!isMissing(err)) throw err;
      }
      if (items.length > 0) this.stack.push({ dir: this.dir, key: this.key, items, next: 0 });
    }
    while (keys.length < WALK_PAGE && this.stack.length > 0) {
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
        error = failureOf(item.error);
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
        items = listDirectory(sub, this.skip);
      } catch (err) {
        if (isMissing(err)) continue;
        error = failureOf(err);
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
      const st = statSync(sub, { throwIfNoEntry: false });
      if (st) add(`${key}/`, WALK_EMPTY_DIR, 0, st.mtimeMs);
    }
    const count = keys.length;
    return {
      id: this.id,
      keys: keys.join('\0'),
      count,
      kinds: kinds.slice(0, count),
      sizes: sizes.slice(0, count),
      mtimes: mtimes.slice(0, count),
      notes,
      error,
      done: this.stack.length === 0,
    };
  }
}

// ---------------------------------------------------------------------------------------------

const walks = new Map<number, Walk>();
const port = parentPort!;

function nextPage(id: number, walk: Walk): void {
  let reply: WalkReply;
  try {
    reply = walk.page();
  } catch (err) {
    walks.delete(id);
    port.postMessage({ id, failed: failureOf(err) } satisfies Reply);
    return;
  }
  if (reply.done) walks.delete(id);
  port.postMessage(reply satisfies Reply, [
    reply.kinds.buffer as ArrayBuffer,
    reply.sizes.buffer as ArrayBuffer,
    reply.mtimes.buffer as ArrayBuffer,
  ]);
}

port.on('message', (request: Request) => {
  switch (request.op) {
    case 'write': {
      const writes = request.files.map((file): WriteOutcome => {
        try {
          return { ok: true, value: writeSmallFile(file) };
        } catch (err) {
          return { ok: false, error: failureOf(err) };
        }
      });
      port.postMessage({ id: request.id, writes } satisfies Reply);
      return;
    }
    case 'walk': {
      const walk = new Walk(request.id, request.dir, request.key, request.skip, request.emptyDirs);
      walks.set(request.id, walk);
      nextPage(request.id, walk);
      return;
    }
    case 'next': {
      const walk = walks.get(request.id);
      if (walk) nextPage(request.id, walk);
      else
        port.postMessage({
          id: request.id,
          keys: '',
          count: 0,
          kinds: new Uint8Array(0),
          sizes: new Float64Array(0),
          mtimes: new Float64Array(0),
          notes: {},
          done: true,
        } satisfies Reply);
      return;
    }
    case 'stop':
      walks.delete(request.id);
      return;
  }
});
