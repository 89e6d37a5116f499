import { createRequire } from 'node:module';
import { readAhead, type FsWork, type PageOfWalk, type SmallFile, type SmallFileWritten } from './fsWork.ts';

/**
 * The small file system work done by Yunji's optional native module (`native/fs-work`, package
 * `yunji-fs-work`) on libuv's thread pool with plain system calls: a batch of small files written
 * whole, or the next page of a directory walk with the size and time of each file, is one hand-off
 * (docs/DECISIONS.md).
 */

interface FsFailure {
  message: string;
  code: string;
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

/** The binding's own calls (native/fs-work/fs_work.cc). */
interface Binding {
  writeFiles(files: SmallFile[], done: (results: ({ replaced: boolean; size: number; error?: undefined } | { error: FsFailure })[]) => void): void;
  walkOpen(dir: string, key: string, skip: string, emptyDirs: boolean): NativeWalk;
  walkNext(walk: NativeWalk, done: (error: FsFailure | undefined, page: NativePage | undefined) => void): void;
  walkStop(walk: NativeWalk): void;
}

/** The file system's error as Node makes them (its `code` kept). */
const errorOf = (f: FsFailure) => Object.assign(new Error(f.message), { code: f.code });

/**
 * The native module's file system work; throws (with `require`'s error) where the module is not
 * installed, not built, or built for another platform or Node.
 */
export function loadNativeFs(): FsWork {
  const binding = createRequire(import.meta.url)('yunji-fs-work') as Binding;
  let queued: { file: SmallFile; resolve: (w: SmallFileWritten) => void; reject: (err: Error) => void }[] = [];

  /**
   * The writes of one turn of the event loop go over in one hand-off, or two when there are several:
   * waking a pool thread is most of a hand-off's cost, concurrent uploads finish in the same turn,
   * and the disk creates files faster two at a time than one.
   */
  const flush = () => {
    const batch = queued;
    queued = [];
    const share = Math.ceil(batch.length / 2);
    for (let i = 0; i < batch.length; i += share) {
      const part = batch.slice(i, i + share);
      binding.writeFiles(
        part.map((p) => p.file),
        (results) => results.forEach((r, j) => (r.error ? part[j]!.reject(errorOf(r.error)) : part[j]!.resolve({ replaced: r.replaced, size: r.size }))),
      );
    }
  };

  const nextPage = (walk: NativeWalk) =>
    new Promise<PageOfWalk>((resolve, reject) =>
      binding.walkNext(walk, (error, page) => {
        if (error) return reject(errorOf(error));
        const p = page!;
        resolve({
          page: { keys: p.count > 0 ? p.keys.split('\0') : [], kinds: p.kinds, sizes: p.sizes, mtimes: p.mtimes, notes: p.notes, error: p.error && errorOf(p.error) },
          done: p.done,
        });
      }),
    );

  return {
    writeSmallFile: (file) =>
      new Promise((resolve, reject) => {
        if (queued.length === 0) setImmediate(flush);
        queued.push({ file, resolve, reject });
      }),
    walkDirectory: (dir, key, skip, emptyDirs) => {
      const walk = binding.walkOpen(dir, key, skip, emptyDirs);
      // Left before its end (a cancelled sync): the walk lets go of what it holds.
      return readAhead(
        () => nextPage(walk),
        () => binding.walkStop(walk),
      );
    },
  };
}
