import { createHash } from 'node:crypto';
import { addAbortSignal, type Readable } from 'node:stream';
import { joinKey, type Backend, type BackendEntry } from '../backends/backend.ts';
import { assertOutsideReserved } from '../backends/layout.ts';

/** A file (or an empty folder, its path ending in `/`) relative to the synced folder. */
export interface TreeEntry {
  path: string;
  size: number;
  mtimeMs: number;
  /** `mtimeMs` is the store's own time (S3's LastModified): `exactTime` tells the file's. */
  approximateTime: boolean;
  emptyDir: boolean;
  /** Where the tree keeps it (a backend key, an object id, a URL). */
  key: string;
  /** Upper-case hex SHA-256, where the tree knows it without reading the content. */
  hash?: string;
  /** A version token of the source (an ETag) as the destination last recorded it. */
  tag?: string;
  /** Why the file cannot be synced (a name that is not UTF-8). */
  problem?: string;
}

/**
 * One side of a sync: a folder of a user space, a package, or a list of URLs. The engine only
 * lists, reads, writes and removes through this, so every kind of sync is the same code.
 */
export interface SyncTree {
  /** Entries in byte order of their paths. `only` names one file to look for (a single-file source). */
  entries(emptyDirs: boolean, only?: string): AsyncIterable<TreeEntry>;
  /** The single file this tree is, when it is a file rather than a folder. */
  singleFile?(): Promise<string | undefined>;
  read(entry: TreeEntry, signal: AbortSignal): Promise<Readable>;
  /** Writes `entry` of `from` at the same path here, atomically, keeping its time (and tag). */
  write(entry: TreeEntry, from: SyncTree, signal: AbortSignal): Promise<{ size: number }>;
  remove(entry: TreeEntry): Promise<void>;
  makeDir?(path: string): Promise<void>;
  exactTime?(entry: TreeEntry): Promise<number | undefined>;
}

export async function sha256Of(tree: SyncTree, entry: TreeEntry, signal: AbortSignal): Promise<string> {
  if (entry.hash) return entry.hash;
  const hash = createHash('sha256');
  for await (const chunk of await tree.read(entry, signal)) hash.update(chunk as Buffer);
  return hash.digest('hex').toUpperCase();
}

/** A folder (or one file) of a backend. What it writes, removes or makes never enters a reserved `.yunji` folder. */
export class BackendTree implements SyncTree {
  constructor(
    readonly backend: Backend,
    /** Key of the folder or file, relative to the backend's root; '' for the root. */
    readonly root: string,
  ) {}

  private toEntry(e: BackendEntry): TreeEntry {
    return {
      path: this.root === '' ? e.key : e.key.slice(this.root.length + 1),
      size: e.size,
      mtimeMs: e.mtimeMs,
      approximateTime: e.approximateTime === true,
      emptyDir: e.emptyDir === true,
      key: e.key,
      ...(e.problem !== undefined ? { problem: e.problem } : {}),
    };
  }

  async singleFile(): Promise<string | undefined> {
    if (this.root === '') return undefined;
    return (await this.backend.stat(this.root)) ? this.root.slice(this.root.lastIndexOf('/') + 1) : undefined;
  }

  async *entries(emptyDirs: boolean, only?: string): AsyncIterable<TreeEntry> {
    if (only !== undefined) {
      const e = await this.backend.stat(joinKey(this.root, only));
      if (e) yield this.toEntry(e);
      return;
    }
    for await (const e of this.backend.list(this.root, { emptyDirs })) {
      // A backend lists a prefix that names a file as that file; only what is inside the folder counts.
      if (this.root !== '' && !e.key.startsWith(`${this.root}/`)) continue;
      yield this.toEntry(e);
    }
  }

  async read(entry: TreeEntry, signal: AbortSignal): Promise<Readable> {
    return addAbortSignal(signal, await this.backend.get(entry.key));
  }

  async write(entry: TreeEntry, from: SyncTree, signal: AbortSignal): Promise<{ size: number }> {
    const key = joinKey(this.root, entry.path);
    assertOutsideReserved(key);
    const put = { mtimeMs: entry.mtimeMs, ...(entry.size >= 0 ? { size: entry.size } : {}) };
    // Local to local: the kernel copies the file.
    if (from instanceof BackendTree && from.backend.localFile && this.backend.putFile) {
      return this.backend.putFile(key, await from.backend.localFile(entry.key), put);
    }
    return this.backend.put(key, await from.read(entry, signal), put);
  }

  async remove(entry: TreeEntry): Promise<void> {
    assertOutsideReserved(entry.key);
    await this.backend.remove(entry.key);
  }

  async makeDir(path: string): Promise<void> {
    const key = joinKey(this.root, path);
    assertOutsideReserved(key);
    await this.backend.makeDir?.(key);
  }

  async exactTime(entry: TreeEntry): Promise<number | undefined> {
    return (await this.backend.stat(entry.key))?.mtimeMs;
  }
}

/**
 * Orders relative paths as their UTF-8 bytes (the order both local walks and S3 listings use).
 * JavaScript compares UTF-16 units, which agrees except where a surrogate pair meets U+E000–U+FFFF.
 */
export function compareUtf8(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (D800–DFFF) encode code points above FFFF: they sort after E000–FFFF.
    if (x >= 0xd800 && x <= 0xdfff) x += 0x2000;
    else if (x >= 0xe000) x -= 0x800;
    if (y >= 0xd800 && y <= 0xdfff) y += 0x2000;
    else if (y >= 0xe000) y -= 0x800;
    return x - y;
  }
  return a.length - b.length;
}

/** Pairs the entries of two ordered streams by path: [source, destination], either missing. */
export async function* mergeByPath(
  a: AsyncIterator<TreeEntry>,
  b: AsyncIterator<TreeEntry>,
): AsyncGenerator<[TreeEntry | undefined, TreeEntry | undefined]> {
  let x = await a.next();
  let y = await b.next();
  let last: string | undefined;
  while (!x.done || !y.done) {
    const c = x.done ? 1 : y.done ? -1 : compareUtf8(x.value.path, y.value.path);
    const path = c <= 0 ? x.value!.path : y.value!.path;
    if (last !== undefined && compareUtf8(path, last) < 0) throw new Error(`a listing is out of order ('${path}' after '${last}')`);
    last = path;
    if (c === 0) {
      yield [x.value, y.value];
      [x, y] = await Promise.all([a.next(), b.next()]);
    } else if (c < 0) {
      yield [x.value, undefined];
      x = await a.next();
    } else {
      yield [undefined, y.value];
      y = await b.next();
    }
  }
}

/** The two listings of a sync. A source that is one file syncs that file into the destination folder under its own name. */
export async function listBoth(
  src: SyncTree,
  dst: SyncTree,
  emptyDirs: boolean,
): Promise<{ source: AsyncIterator<TreeEntry>; dest: AsyncIterator<TreeEntry> }> {
  const single = await src.singleFile?.();
  if (single !== undefined) {
    const parentOf = (t: BackendTree) => new BackendTree(t.backend, t.root.includes('/') ? t.root.slice(0, t.root.lastIndexOf('/')) : '');
    const source = src instanceof BackendTree ? parentOf(src).entries(false, single) : src.entries(false);
    return { source: source[Symbol.asyncIterator](), dest: dst.entries(false, single)[Symbol.asyncIterator]() };
  }
  return { source: src.entries(emptyDirs)[Symbol.asyncIterator](), dest: dst.entries(emptyDirs)[Symbol.asyncIterator]() };
}
