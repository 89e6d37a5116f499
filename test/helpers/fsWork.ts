import { loadNativeFs } from '../../src/backends/fsNative.ts';
import { portableFs } from '../../src/backends/fsPortable.ts';
import type { FsWork } from '../../src/backends/fsWork.ts';

/** One implementation of the small file system work, and the `YUNJI_NATIVE` setting that chooses it. */
export interface FsWorkCase {
  name: 'native' | 'portable';
  setting: 'auto' | 'off';
  /** Undefined where the native module is not built here (its cases are skipped, with a printed reason). */
  fs: FsWork | undefined;
}

function nativeOrWhyNot(): FsWork | undefined {
  try {
    return loadNativeFs();
  } catch (err) {
    console.warn(`SKIPPING the native module's cases: yunji-fs-work did not load (${(err as Error).message.split('\n')[0]})`);
    return undefined;
  }
}

/** Both implementations, for suites that must hold on each. */
export const fsWorkCases: FsWorkCase[] = [
  { name: 'native', setting: 'auto', fs: nativeOrWhyNot() },
  { name: 'portable', setting: 'off', fs: portableFs },
];
