import { createHash, randomUUID } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { Transform, type Readable } from 'node:stream';
import { joinKey, type Backend, type ByteRange } from './backend.ts';
import { BackendError } from './backendError.ts';
import { readSmall } from '../lib/streams.ts';
import { shardKey, shardsPrefix, tmpPrefix } from './layout.ts';

/**
 * Content-addressed bytes of one space: each distinct content is stored once, named by its SHA-256
 * (upper-case hex). A write streams into a temporary key while hashing, then renames it into place
 * (small content, hashed in memory, is put at its name at once), so a shard is either absent or
 * complete. Nothing here knows which objects use a shard: the sweeper asks (`inUse`), and only
 * removes shards older than the time it is given (an upload writes its shard before it commits
 * the object that references it, under a hold that keeps that time before the write's start: see
 * writeFence.ts). A write that finds its content stored already relies on bytes as old as any and
 * pins them instead; the sweeper's intent and the write's pin are a handshake (`ShardGuard`).
 */
export interface StoredShard {
  hash: string;
  size: number;
}

/** How a capped space accounts for its bytes (see spaces.ts). */
export interface ShardQuota {
  /** Bytes the store may still take (Infinity: no cap). */
  room(): Promise<number>;
  /** Counts a new shard; false when the space filled up meanwhile (nothing counted then). */
  claim(bytes: number): Promise<boolean>;
  release(bytes: number): Promise<void>;
}

/**
 * The handshake that keeps a sweep from removing a shard a write has found stored and will name
 * (see shardGuard.ts). Each side writes its row, committed, before it reads the other's.
 */
export interface ShardGuard {
  /** Sweeper: records its intent to remove the shard; undefined when another sweep has one. */
  intend(hash: string): Promise<{ fresh(): boolean; done(): Promise<void> } | undefined>;
  /** Writer: pins the shard (until the write's hold ends), then returns once no sweep is removing it. */
  pin(hash: string): Promise<void>;
}

/** No handshake: for a store no other process or sweep shares. */
export const unguarded: ShardGuard = {
  intend: async () => ({ fresh: () => true, done: async () => undefined }),
  pin: async () => undefined,
};

export const unlimited: ShardQuota = {
  room: async () => Infinity,
  claim: async () => true,
  release: async () => undefined,
};

export class ShardTooLarge extends BackendError {
  constructor(readonly limit: number) {
    super(`larger than the limit of ${limit} bytes`, 'too_large');
  }
}

export class SpaceFull extends BackendError {
  constructor(readonly room: number) {
    super(`the space's shard store is full (${room} bytes left)`, 'full');
  }
}

/** Content up to this size is gathered in memory and written in one call instead of streamed. */
const SMALL_SHARD = 256 * 1024;

export class ShardStore {
  constructor(
    readonly backend: Backend,
    readonly workingDir: string,
    private readonly quota: ShardQuota = unlimited,
    private readonly guard: ShardGuard = unguarded,
  ) {}

  /** Streams `source` into the store; more than `maxBytes`, or than the space has room for, is refused and nothing remains. */
  async write(source: Readable, maxBytes = Number.MAX_SAFE_INTEGER): Promise<StoredShard> {
    const small = await readSmall(source, SMALL_SHARD);
    return small ? this.writeBytes(small, maxBytes) : this.writeStream(source, maxBytes);
  }

  /**
   * Content already in memory: hashed, then written in one call. Into a space without a cap it goes
   * straight to its name (a put is atomic), its bytes counted afterwards if it is new; a capped
   * space claims room first, so it takes the temporary name and the checked `place`.
   */
  private async writeBytes(bytes: Buffer, maxBytes: number): Promise<StoredShard> {
    if (bytes.length > maxBytes) throw new ShardTooLarge(maxBytes);
    const room = await this.quota.room();
    if (bytes.length > room) throw new SpaceFull(room);
    const hash = createHash('sha256').update(bytes).digest('hex').toUpperCase();
    if (room === Infinity) {
      const target = shardKey(this.workingDir, hash);
      const { replaced } = await this.backend.put(target, bytes, { reportReplaced: true });
      // Put over a shard stored already, which a sweep may be removing: put again if that sweep took it.
      if (replaced && (await this.pinned(hash, target))) return { hash, size: bytes.length };
      if (replaced) await this.backend.put(target, bytes);
      await this.quota.claim(bytes.length);
      return { hash, size: bytes.length };
    }
    const tmp = joinKey(tmpPrefix(this.workingDir), randomUUID());
    try {
      await this.backend.put(tmp, bytes, { scratch: true });
    } catch (err) {
      await this.backend.remove(tmp).catch(() => undefined);
      throw err;
    }
    return this.place(tmp, hash, bytes.length);
  }

  private async writeStream(source: Readable, maxBytes: number): Promise<StoredShard> {
    // Listening before anything is awaited, so a client gone meanwhile is a failure, not an unheard 'error'.
    let failure: Error | undefined;
    let room = Infinity;
    const hasher = createHash('sha256');
    let size = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        size += chunk.length;
        if (size > maxBytes) return done(new ShardTooLarge(maxBytes));
        if (size > room) return done(new SpaceFull(room));
        hasher.update(chunk);
        done(null, chunk);
      },
    });
    // The first failure (too large, space full, client gone) is the one reported.
    const fail = (err: Error) => {
      failure ??= err;
      meter.destroy(err);
    };
    source.once('error', fail);
    source.once('close', () => {
      if (!source.readableEnded) fail(new Error('the upload ended before its last byte'));
    });
    meter.once('error', (err) => {
      failure ??= err;
      source.destroy();
    });
    room = await this.quota.room();
    if (source.errored || (source.destroyed && !source.readableEnded))
      fail(source.errored ?? new Error('the upload ended before its last byte'));
    const metered = source.pipe(meter);
    const tmp = joinKey(tmpPrefix(this.workingDir), randomUUID());
    try {
      await this.backend.put(tmp, metered, { scratch: true });
      if (failure) throw failure;
    } catch (err) {
      await this.backend.remove(tmp).catch(() => undefined);
      throw failure ?? err;
    }
    return this.place(tmp, hasher.digest('hex').toUpperCase(), size);
  }

  /**
   * Moves a complete temporary file to its shard's name, counting its bytes if the shard is new. A
   * shard stored already is pinned and kept (the temporary copy removed: on a local disk its pages
   * are then dropped unwritten, docs/DECISIONS.md); the copy takes its place only if it went meanwhile.
   */
  private async place(tmp: string, hash: string, size: number): Promise<StoredShard> {
    let claimed = 0;
    try {
      const target = shardKey(this.workingDir, hash);
      let existing = await this.backend.stat(target);
      if (existing) existing = await this.pinned(hash, target);
      if (existing?.size === size) {
        await this.backend.remove(tmp);
        return { hash, size };
      }
      if (!existing) {
        if (!(await this.quota.claim(size))) throw new SpaceFull(Math.max(0, await this.quota.room()));
        claimed = size;
      }
      await this.backend.rename(tmp, target);
      return { hash, size };
    } catch (err) {
      if (claimed) await this.quota.release(claimed);
      await this.backend.remove(tmp).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Pins a shard found stored, so that no sweep takes it before the write's commit names it, and
   * looks at it again once no sweep is removing it: undefined if one took it meanwhile.
   */
  private async pinned(hash: string, target: string) {
    await this.guard.pin(hash);
    return this.backend.stat(target);
  }

  /** Whether a stored shard stays for a write that will name it (a clone): pinned as `place` does, false if it is gone. */
  async keepStored(hash: string): Promise<boolean> {
    return (await this.pinned(hash, shardKey(this.workingDir, hash))) !== undefined;
  }

  /** A shard's bytes, optionally a range. */
  read(hash: string, range?: ByteRange): Promise<Readable> {
    return this.backend.get(shardKey(this.workingDir, hash), range);
  }

  /** A shard's file opened for reading where the backend is a local directory; undefined elsewhere. */
  async openFile(hash: string): Promise<FileHandle | undefined> {
    return this.backend.openFile?.(shardKey(this.workingDir, hash));
  }

  async size(hash: string): Promise<number | undefined> {
    return (await this.backend.stat(shardKey(this.workingDir, hash)))?.size;
  }

  /**
   * Removes one shard if nothing uses it and it is older than `olderThanMs` (epoch ms; a younger
   * one may be a write's that has not committed yet; the sweeper takes it later if it stays
   * unused). Returns the bytes freed, 0 if it stays.
   */
  async removeIfUnused(hash: string, olderThanMs: number, inUse: (hash: string) => Promise<boolean>): Promise<number> {
    const key = shardKey(this.workingDir, hash);
    const entry = await this.backend.stat(key);
    if (!entry || entry.mtimeMs >= olderThanMs) return 0;
    const { removed, size } = await this.removeUnused(key, hash, olderThanMs, inUse);
    return removed ? size : 0;
  }

  /**
   * Removes temporary files and unused shards older than `cutoff` (epoch ms). A shard is looked at
   * again just before it goes, so one an upload has just renamed into place (new again) stays.
   */
  async sweep(cutoff: number, inUse: (hash: string) => Promise<boolean>): Promise<{ removed: number; bytes: number; kept: number }> {
    const result = { removed: 0, bytes: 0, kept: 0 };
    for await (const entry of this.backend.list(tmpPrefix(this.workingDir))) {
      if (entry.mtimeMs >= cutoff) continue;
      await this.backend.remove(entry.key);
      result.removed++;
    }
    for await (const entry of this.backend.list(shardsPrefix(this.workingDir))) {
      const hash = entry.key.slice(entry.key.lastIndexOf('/') + 1);
      if (!/^[0-9A-F]{64}$/.test(hash)) continue;
      // Most shards are in use: they cost no handshake.
      const { removed, size } =
        entry.mtimeMs >= cutoff || (await inUse(hash))
          ? { removed: false, size: entry.size }
          : await this.removeUnused(entry.key, hash, cutoff, inUse);
      if (!removed) {
        result.kept += size;
        continue;
      }
      result.removed++;
      result.bytes += size;
    }
    return result;
  }

  /**
   * The sweeper's side of the handshake: its intent recorded, it asks `inUse` (pins included) and
   * looks at the shard again, then removes it. A write that pinned the shard after that question
   * sees the intent and waits for its end. Returns whether it went, and its size (0 if missing).
   */
  private async removeUnused(
    key: string,
    hash: string,
    cutoff: number,
    inUse: (hash: string) => Promise<boolean>,
  ): Promise<{ removed: boolean; size: number }> {
    const intent = await this.guard.intend(hash);
    if (!intent) return { removed: false, size: (await this.backend.stat(key))?.size ?? 0 };
    try {
      const now = await this.backend.stat(key);
      if (!now || now.mtimeMs >= cutoff || (await inUse(hash)) || !intent.fresh()) return { removed: false, size: now?.size ?? 0 };
      await this.backend.remove(key);
      await this.quota.release(now.size);
      return { removed: true, size: now.size };
    } finally {
      await intent.done();
    }
  }
}
