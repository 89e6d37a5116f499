import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';

/**
 * Content-addressed bytes of one local space: each distinct content is stored once, named by its
 * SHA-256. A write streams into a temporary file while hashing, then renames it into place, so a
 * shard is either absent or complete. Nothing here knows which objects use a shard: the sweeper
 * asks the database, and only removes shards older than a grace period (an upload renames its
 * shard before it commits the object that references it).
 */
export interface StoredShard {
  hash: string;
  size: number;
}

export class LocalShardStore {
  constructor(readonly root: string) {}

  private shardPath(hash: string): string {
    return join(this.root, 'shards', hash.slice(0, 2), hash);
  }

  private tmpDir(): string {
    return join(this.root, 'tmp');
  }

  /** Streams `source` into the store; `maxBytes` stops (and discards) anything larger. */
  async write(source: Readable, maxBytes = Number.MAX_SAFE_INTEGER): Promise<StoredShard> {
    await mkdir(this.tmpDir(), { recursive: true });
    const tmp = join(this.tmpDir(), randomUUID());
    const hasher = createHash('sha256');
    let size = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        size += chunk.length;
        if (size > maxBytes) return done(new ShardTooLarge(maxBytes));
        hasher.update(chunk);
        done(null, chunk);
      },
    });
    try {
      await pipeline(source, meter, createWriteStream(tmp, { flags: 'wx' }));
      const hash = hasher.digest('hex').toUpperCase();
      const target = this.shardPath(hash);
      await mkdir(join(target, '..'), { recursive: true });
      // Renaming over an identical shard refreshes its age, which protects it from the sweeper.
      await rename(tmp, target);
      return { hash, size };
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  /** A shard's bytes, optionally a range [start, end] inclusive. */
  read(hash: string, range?: { start: number; end: number }): Readable {
    return createReadStream(this.shardPath(hash), range);
  }

  async exists(hash: string): Promise<boolean> {
    return stat(this.shardPath(hash)).then(
      () => true,
      () => false,
    );
  }

  /** Removes shards and temporary files older than `graceMs` for which `inUse` says no. */
  async sweep(graceMs: number, inUse: (hash: string) => Promise<boolean>): Promise<{ removed: number; bytes: number }> {
    const cutoff = Date.now() - graceMs;
    let removed = 0;
    let bytes = 0;
    for (const name of await readdir(this.tmpDir()).catch(() => [] as string[])) {
      const file = join(this.tmpDir(), name);
      const st = await stat(file).catch(() => undefined);
      if (st && st.mtimeMs < cutoff) {
        await rm(file, { force: true });
        removed++;
        bytes += st.size;
      }
    }
    const shardsDir = join(this.root, 'shards');
    for (const prefix of await readdir(shardsDir).catch(() => [] as string[])) {
      for (const hash of await readdir(join(shardsDir, prefix)).catch(() => [] as string[])) {
        const file = this.shardPath(hash);
        const st = await stat(file).catch(() => undefined);
        if (!st || st.mtimeMs >= cutoff || (await inUse(hash))) continue;
        await rm(file, { force: true });
        removed++;
        bytes += st.size;
      }
    }
    return { removed, bytes };
  }
}

export class ShardTooLarge extends Error {
  constructor(readonly limit: number) {
    super(`larger than the limit of ${limit} bytes`);
  }
}
