import { joinKey, type Backend, type BackendEntry } from '../spaces/backend.ts';

/** A folder (or one file) of a backend, as one side of a sync. */
export interface TreeSide {
  backend: Backend;
  /** Key of the folder or file, relative to the backend's root; '' for the root. */
  root: string;
}

/** A file (or an empty folder, its path ending in `/`) relative to the synced folder. */
export interface TreeEntry {
  path: string;
  size: number;
  mtimeMs: number;
  approximateTime: boolean;
  emptyDir: boolean;
  /** Its key in the backend. */
  key: string;
}

function toEntry(e: BackendEntry, base: string): TreeEntry {
  return {
    path: base === '' ? e.key : e.key.slice(base.length + 1),
    size: e.size,
    mtimeMs: e.mtimeMs,
    approximateTime: e.approximateTime === true,
    emptyDir: e.emptyDir === true,
    key: e.key,
  };
}

/** Everything under `base` in key order, paths relative to `base`. */
export async function* entriesUnder(backend: Backend, prefix: string, base: string, emptyDirs: boolean): AsyncGenerator<TreeEntry> {
  for await (const e of backend.list(prefix, { emptyDirs })) {
    // A backend lists a prefix that names a file as that file; here only what is inside `base` counts.
    if (base !== '' && !e.key.startsWith(`${base}/`)) continue;
    yield toEntry(e, base);
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
export async function* mergeByPath(a: AsyncIterator<TreeEntry>, b: AsyncIterator<TreeEntry>): AsyncGenerator<[TreeEntry | undefined, TreeEntry | undefined]> {
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

/**
 * The two listings of a sync. A source that is one file syncs that file into the destination
 * folder under its own name.
 */
export async function listBoth(src: TreeSide, dst: TreeSide, emptyDirs: boolean): Promise<{ source: AsyncIterator<TreeEntry>; dest: AsyncIterator<TreeEntry> }> {
  const single = src.root === '' ? undefined : await src.backend.stat(src.root);
  if (single) {
    const name = src.root.slice(src.root.lastIndexOf('/') + 1);
    const parent = src.root.includes('/') ? src.root.slice(0, src.root.lastIndexOf('/')) : '';
    return {
      source: entriesUnder(src.backend, src.root, parent, false),
      dest: entriesUnder(dst.backend, joinKey(dst.root, name), dst.root, false),
    };
  }
  return { source: entriesUnder(src.backend, src.root, src.root, emptyDirs), dest: entriesUnder(dst.backend, dst.root, dst.root, emptyDirs) };
}
