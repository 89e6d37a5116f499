import { createRequire } from 'node:module';

/**
 * Loads the optional native module that fixes glibc's mmap threshold (native/malloc-tuning): without
 * it, every libuv thread that ran a password check keeps scrypt's 16 MiB resident, so a server's RSS
 * grew by up to 64 MiB after its first few logins. Where the module was not built (no compiler, not
 * glibc) the server runs as before; the answer says whether the setting took effect.
 */
export function tuneMalloc(): boolean {
  try {
    return (createRequire(import.meta.url)('yunji-malloc-tuning') as { applied: boolean }).applied;
  } catch {
    return false;
  }
}
