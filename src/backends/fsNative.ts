import { createRequire } from 'node:module';
import { TurnBatch, unsettle, type Settled } from '../lib/turnBatch.ts';
import {
  errorOf,
  readAhead,
  unpackWalkPage,
  type FsFailure,
  type FsWork,
  type PackedWalkPage,
  type PageOfWalk,
  type SmallFile,
  type SmallFileWritten,
} from './fsWork.ts';

/**
 * The small file system work done by Yunji's optional native module (`native/fs-work`, package
 * `yunji-fs-work`) on libuv's thread pool with plain system calls: a batch of small files written
 * whole, or the next page of a directory walk with the size and time of each file, is one hand-off
 * (docs/DECISIONS.md).
 */

declare const walkBrand: unique symbol;
type NativeWalk = { readonly [walkBrand]: true };

/** The binding's own calls (native/fs-work/fs_work.cc). */
interface Binding {
  writeFiles(
    files: SmallFile[],
    done: (results: ({ replaced: boolean; size: number; error?: undefined } | { error: FsFailure })[]) => void,
  ): void;
  walkOpen(dir: string, key: string, skip: string, emptyDirs: boolean): NativeWalk;
  walkNext(walk: NativeWalk, done: (error: FsFailure | undefined, page: PackedWalkPage | undefined) => void): void;
  walkStop(walk: NativeWalk): void;
}

/** The file system's error as Node makes them (its `code` kept). */

/**
 * The native module's file system work; throws (with `require`'s error) where the module is not
 * installed, not built, or built for another platform or Node.
 */
export function loadNativeFs(): FsWork {
  const binding = createRequire(import.meta.url)('yunji-fs-work') as Binding;

  /** One hand-off: the binding writes `files` on a pool thread and settles each. */
  const writeFiles = (files: SmallFile[]) =>
    new Promise<Settled<SmallFileWritten>[]>((resolve) =>
      binding.writeFiles(files, (results) =>
        resolve(
          results.map((r) =>
            r.error ? { ok: false, error: errorOf(r.error) } : { ok: true, value: { replaced: r.replaced, size: r.size } },
          ),
        ),
      ),
    );

  /**
   * The writes of one turn of the event loop go over in one hand-off, or two when there are several:
   * waking a pool thread is most of a hand-off's cost, concurrent uploads finish in the same turn,
   * and the disk creates files faster two at a time than one.
   */
  // Each item's outcome is its hand-off's: the half done first is answered without waiting for the other.
  const writes = new TurnBatch<SmallFile, Promise<Settled<SmallFileWritten>>>(
    async (batch) => {
      const share = Math.ceil(batch.length / 2);
      const outcomes: Promise<Settled<SmallFileWritten>>[] = [];
      for (let i = 0; i < batch.length; i += share) {
        const part = writeFiles(batch.slice(i, i + share));
        batch.slice(i, i + share).forEach((_, j) => outcomes.push(part.then((results) => results[j]!)));
      }
      return outcomes;
    },
    { max: Number.MAX_SAFE_INTEGER },
  );

  const nextPage = (walk: NativeWalk) =>
    new Promise<PageOfWalk>((resolve, reject) =>
      binding.walkNext(walk, (error, page) => {
        if (error) return reject(errorOf(error));
        resolve(unpackWalkPage(page!));
      }),
    );

  return {
    writeSmallFile: async (file) => unsettle(await writes.submit(file)),
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
