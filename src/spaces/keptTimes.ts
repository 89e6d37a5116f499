import type { Db } from '../db/index.ts';
import { inGroupCommit } from '../db/groupCommit.ts';

/** An object as Yunji wrote it: its ETag (without quotes) and size then, and the file time it was given. */
export interface WrittenObject {
  etag: string;
  size: number;
  mtimeMs: number;
}

/**
 * The file times of the objects Yunji wrote to one S3 bucket. S3 lists an object's upload time,
 * not the file's: that is kept in the object's metadata, which only a HEAD per object reads, and a
 * sync that compares times would make one HEAD per file (rclone does). A listed object whose ETag
 * and size are what Yunji recorded when it wrote it holds the same bytes, so the recorded time is
 * its file time. Anything else (written by another tool, changed, never recorded) falls back to
 * the HEAD. The record is only a shortcut: a lost one costs a HEAD, never a wrong answer about
 * content.
 */
export interface KeptTimes {
  record(key: string, object: WrittenObject): Promise<void>;
  forget(keys: string[]): Promise<void>;
  /** The records of keys after `after` (or from `from` inclusive, for the first page) up to `upTo`, in byte order. */
  between(range: { after?: string; from: string; upTo: string }): Promise<Map<string, WrittenObject>>;
}

/** Which bucket a record is about: two spaces on the same bucket share what is known of it. */
export function keptTimesLocation(endpoint: string, bucket: string): string {
  return `${endpoint.replace(/\/+$/, '')}|${bucket}`;
}

export function keptTimesIn(db: Db, location: string): KeptTimes {
  return {
    async record(key, { etag, size, mtimeMs }) {
      const row = { location, key, etag, size, mtime_ms: Math.round(mtimeMs) };
      await inGroupCommit(db, (trx) =>
        trx
          .insertInto('s3_object_times')
          .values(row)
          .onConflict((c) => c.columns(['location', 'key']).doUpdateSet({ etag, size, mtime_ms: row.mtime_ms }))
          .execute(),
      );
    },

    async forget(keys) {
      if (keys.length === 0) return;
      await inGroupCommit(db, (trx) => trx.deleteFrom('s3_object_times').where('location', '=', location).where('key', 'in', keys).execute());
    },

    async between({ after, from, upTo }) {
      let query = db.selectFrom('s3_object_times').select(['key', 'etag', 'size', 'mtime_ms']).where('location', '=', location).where('key', '<=', upTo);
      query = after !== undefined ? query.where('key', '>', after) : query.where('key', '>=', from);
      const rows = await query.execute();
      return new Map(rows.map((r) => [r.key, { etag: r.etag, size: Number(r.size), mtimeMs: Number(r.mtime_ms) }]));
    },
  };
}

/** An ETag as S3 sends it, quoted; compared and kept without the quotes. */
export function bareEtag(etag: string | undefined): string | undefined {
  if (etag === undefined || etag === '') return undefined;
  return etag.replace(/^(W\/)?"|"$/g, '');
}
