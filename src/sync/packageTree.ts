import type { Readable } from 'node:stream';
import type { Core } from '../jobs/core.ts';
import { spaceById, spaceForUpload } from '../spaces/spaces.ts';
import { storeOf, Upload } from '../storage/objects.ts';
import { deleteObjectsCounted } from '../storage/quota.ts';
import type { SyncTree, TreeEntry } from './tree.ts';

const PAGE = 1000;

/**
 * A package as a sync destination: objects by path (the objects' order is byte order on both
 * databases). An object a sync wrote remembers the source file's time and version token, so the
 * next sync compares against those, not against when it was written: equal ones say the source's
 * file is unchanged since the sync copied it, and only the sync writes objects that have them.
 */
export class PackageTree implements SyncTree {
  constructor(
    private readonly core: Core,
    private readonly tenantId: number,
    /** Whose objects the sync makes (the job's creator). */
    private readonly userId: number,
    readonly packageId: number,
  ) {}

  async *entries(_emptyDirs: boolean, only?: string): AsyncIterable<TreeEntry> {
    let after: string | undefined;
    for (;;) {
      let query = this.core.db
        .selectFrom('objects')
        .select(['id', 'path', 'size', 'hash', 'updated_at', 'source_mtime', 'source_tag'])
        .where('package_id', '=', this.packageId)
        .where('redundancy', '!=', 'multipartUpload');
      if (only !== undefined) query = query.where('path', '=', only);
      if (after !== undefined) query = query.where('path', '>', after);
      const page = await query.orderBy('path').limit(PAGE).execute();
      for (const o of page) {
        yield {
          path: o.path,
          size: o.size,
          // An object this sync did not write (an upload, a clone, a move) has no time of the
          // source's file: never equal to one, so the file is fetched again rather than trusted.
          mtimeMs: o.source_mtime ?? NaN,
          approximateTime: false,
          emptyDir: false,
          key: String(o.id),
          hash: o.hash,
          ...(o.source_tag !== null ? { tag: o.source_tag } : {}),
        };
      }
      if (page.length < PAGE) return;
      after = page[page.length - 1]!.path;
    }
  }

  async read(entry: TreeEntry): Promise<Readable> {
    const o = await this.core.db
      .selectFrom('objects')
      .select(['space_id', 'hash'])
      .where('id', '=', Number(entry.key))
      .executeTakeFirstOrThrow();
    return storeOf(await spaceById(this.core, o.space_id)).read(o.hash);
  }

  async write(entry: TreeEntry, from: SyncTree, signal: AbortSignal): Promise<{ size: number }> {
    const upload = new Upload(this.core, await spaceForUpload(this.core, this.tenantId, undefined), this.userId, this.packageId);
    const origin = {
      ...(Number.isFinite(entry.mtimeMs) ? { mtimeMs: Math.round(entry.mtimeMs) } : {}),
      ...(entry.tag !== undefined ? { tag: entry.tag } : {}),
    };
    try {
      const shard = await upload.add(entry.path, await from.read(entry, signal), 'path', origin);
      // Nothing is committed when the content is not what the source said it would be.
      if (entry.hash && entry.hash !== shard.hash)
        throw new Error(`the content's SHA-256 is ${shard.hash}, not the ${entry.hash} the source lists`);
      await upload.commit();
      return { size: shard.size };
    } finally {
      upload.release();
    }
  }

  async remove(entry: TreeEntry): Promise<void> {
    await this.core.db.transaction().execute((trx) => deleteObjectsCounted(trx, this.tenantId, [Number(entry.key)], this.packageId));
  }
}
