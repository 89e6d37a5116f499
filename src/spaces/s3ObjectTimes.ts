import type { Db } from '../db/index.ts';
import { inGroupCommit } from '../db/groupCommit.ts';
import type { KeptTimes } from '../backends/keptTimes.ts';

/** The file times an S3 backend keeps (backends/keptTimes.ts), as rows of `s3_object_times` for one bucket (`keptTimesLocation`). */
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
      await inGroupCommit(db, (trx) =>
        trx.deleteFrom('s3_object_times').where('location', '=', location).where('key', 'in', keys).execute(),
      );
    },

    async between({ after, from, upTo }) {
      let query = db
        .selectFrom('s3_object_times')
        .select(['key', 'etag', 'size', 'mtime_ms'])
        .where('location', '=', location)
        .where('key', '<=', upTo);
      query = after !== undefined ? query.where('key', '>', after) : query.where('key', '>=', from);
      const rows = await query.execute();
      return new Map(rows.map((r) => [r.key, { etag: r.etag, size: Number(r.size), mtimeMs: Number(r.mtime_ms) }]));
    },
  };
}
