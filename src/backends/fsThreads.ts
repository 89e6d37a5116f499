import { loadNativeFs } from './fsNative.ts';
import { portableFs } from './fsPortable.ts';
import type { FsWork, SmallFile, SmallFileWritten, WalkPage } from './fsWork.ts';

export { WALK_BAD_NAME, WALK_EMPTY_DIR, WALK_ERROR, WALK_FILE, type SmallFile, type SmallFileWritten, type WalkPage } from './fsWork.ts';

/** Which small file system work a process uses, and why pure Node where it is not the native module. */
export type FsChoice = { using: 'native' } | { using: 'portable'; reason: string };

let chosen: { fs: FsWork; choice: FsChoice } | undefined;

/**
 * Chooses the small file system work (`fsWork.ts`) once, at start-up: the native module where it
 * loads and `native` is not off, pure Node otherwise. Without a call, the first use takes the
 * native module where it loads.
 */
export function chooseFsWork(native: 'auto' | 'off'): FsChoice {
  if (native === 'off') {
    chosen = { fs: portableFs, choice: { using: 'portable', reason: 'YUNJI_NATIVE is off' } };
    return chosen.choice;
  }
  try {
    chosen = { fs: loadNativeFs(), choice: { using: 'native' } };
  } catch (err) {
    const message = (err as Error).message.split('\n')[0];
    chosen = { fs: portableFs, choice: { using: 'portable', reason: `yunji-fs-work did not load (${message})` } };
  }
  return chosen.choice;
}

function fsWork(): FsWork {
  if (!chosen) chooseFsWork('auto');
  return chosen!.fs;
}

/** Writes `file` whole (its `bytes`, or a copy of `copyOf`); see FsWork.writeSmallFile. */
export function writeSmallFile(file: SmallFile): Promise<SmallFileWritten> {
  return fsWork().writeSmallFile(file);
}

/** Walks `dir` a page at a time in byte order of its keys; see FsWork.walkDirectory. */
export function walkDirectory(dir: string, key: string, skip: string, emptyDirs: boolean): AsyncGenerator<WalkPage> {
  return fsWork().walkDirectory(dir, key, skip, emptyDirs);
}
