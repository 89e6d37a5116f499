import { createRequire } from 'node:module';

/**
 * Loads the optional native module that fixes glibc's mmap threshold (native/malloc-tuning): without
 * it, a block of 4 to 32 MiB freed on a libuv thread can stay resident in that thread's arena.
 * Password checks no longer need it (scrypt's 128 MiB is above glibc's own ceiling, so always
 * unmapped; docs/DECISIONS.md). Where the module was not built (no compiler, not glibc) the server
 * runs as before; the answer says whether the setting took effect.
 */
export function tuneMalloc(): boolean {
  try {
    return (createRequire(import.meta.url)('yunji-malloc-tuning') as { applied: boolean }).applied;
  } catch {
    return false;
  }
}
