import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { BackendError } from './backendError.ts';

/**
 * A storage system a user space keeps bytes in, seen as files under `/`-separated keys relative to
 * the space's root. The shard store, package import/export and sync all work through this, so a
 * new kind of storage only implements these operations.
 */
export interface BackendEntry {
  key: string;
  size: number;
  mtimeMs: number;
  /** `mtimeMs` is the store's own time (S3's LastModified), not the file's kept one: `stat` tells that. */
  approximateTime?: boolean;
  /** An empty folder, its key ending in `/` (listed only when asked for, by backends that have folders). */
  emptyDir?: boolean;
  /** Why this file cannot be read as a key (a name that is not UTF-8): it is listed to be reported, not used. */
  problem?: string;
}

export interface ListOptions {
  /** Also list empty folders (as entries with `emptyDir`), where the backend has folders. */
  emptyDirs?: boolean;
}

export interface ByteRange {
  start: number;
  /** Inclusive. */
  end: number;
}

export interface PutOptions {
  mtimeMs?: number;
  scratch?: boolean;
  /** Also say whether a file was at the key before (`replaced`); a backend that cannot tell for free makes a request more for it. */
  reportReplaced?: boolean;
  /** The bytes a stream `source` holds, when the caller knows: a backend that charges a quota for what it writes claims them before the first byte. */
  size?: number;
}

export interface Put {
  size: number;
  /** Whether the put replaced a file at its key: given when asked for, or when the backend knew anyway. */
  replaced?: boolean;
}

export interface Backend {
  /**
   * Stores `source` at `key`, atomically: readers see the old content or the new, never a part.
   * `scratch`: the key is a new temporary name nobody reads until the caller renames it, so the
   * backend may write it in place (a failed write may then leave a part there, for the caller to remove).
   * Content already in memory (a small file) comes as a Buffer and is written in one go.
   */
  put(key: string, source: Readable | Buffer, options?: PutOptions): Promise<Put>;
  get(key: string, range?: ByteRange): Promise<Readable>;
  stat(key: string): Promise<BackendEntry | undefined>;
  /** Removes `key`; a missing key is fine. */
  remove(key: string): Promise<void>;
  /** Moves `from` over `to` (replacing it), with its modification time: a kept one stays, a write's stays no older than that write. */
  rename(from: string, to: string): Promise<void>;
  /** Every file at or under `prefix` (a key or a folder), recursively, ordered by key bytes. */
  list(prefix: string, options?: ListOptions): AsyncIterable<BackendEntry>;
  /** Makes an empty folder (backends without folders do not have this). */
  makeDir?(key: string): Promise<void>;
  /** The file on this machine that holds `key`, for a copy the kernel can do (local backends only). */
  localFile?(key: string): Promise<string>;
  /** `key`'s file opened for reading, for a caller that reads it into buffers of its own (local backends only). */
  openFile?(key: string): Promise<FileHandle>;
  /** Stores a copy of the file at `path` on this machine at `key`, atomically, as `put` does. */
  putFile?(key: string, path: string, options?: PutOptions): Promise<{ size: number }>;
  /** Removes what interrupted writes left behind, if older than `olderThanMs` (epoch ms); returns how many. */
  cleanup(olderThanMs: number): Promise<number>;
  /** Releases connections (a backend is dropped when its space changes). */
  close?(): void;
  /** Human-readable location for messages, without secrets. */
  describe(): string;
}

/**
 * Refuses a key that would leave the space's root on some store: a `.` or `..` segment (which a
 * file system or an HTTP path resolves) or a NUL. asClientError answers it with a 400.
 */
export function assertKeyInside(key: string): void {
  if (key.split('/').some((s) => s === '..' || s === '.' || s.includes('\0')))
    throw new BackendError(`'${key}' is not a path inside the space`, 'invalid_path');
}

/** Joins key segments, dropping empty ones: `joinKey('', 'a/', 'b')` is `a/b`. */
export function joinKey(...parts: string[]): string {
  return parts
    .flatMap((p) => p.split('/'))
    .filter((s) => s !== '')
    .join('/');
}
