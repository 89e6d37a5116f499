import { lstat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pipeline, Transform, type Readable, type TransformCallback } from 'node:stream';
import type { Core } from '../core.ts';
import type { Backend, BackendEntry, ByteRange, ListOptions, Put, PutOptions } from '../spaces/backend.ts';
import { touchesReserved } from '../spaces/layout.ts';
import { LocalBackend } from '../spaces/localBackend.ts';
import type { SpaceHandle } from '../spaces/spaces.ts';
import { claimLocalBytes, countLocalBytes } from './quota.ts';

/**
 * The files Yunji writes into a tenant's local spaces for it (package exports, space and workspace
 * syncs) are on the server's own disk, so they count against the tenant's byte quota
 * (`local_bytes`, quota.ts). Writers of such files go through `filesBackendOf`, which claims a
 * file's bytes less those of the file it replaces before writing it and gives back what its
 * removals free. Yunji's own `.yunji` folders are not counted here (their objects are). The
 * recount measures the spaces again, for files changed outside Yunji.
 */

/** The backend to write the tenant's own files into `space` through: a local space's counts them; an S3 space is the tenant's own storage. */
export function filesBackendOf(core: Core, space: SpaceHandle): Backend {
  return space.backend instanceof LocalBackend ? new ChargedBackend(core, space.tenantId, space.backend) : space.backend;
}

/** Files being written or removed through a charged backend in this process, by path: one at a time each, so two cannot both count one replaced file. */
const busy = new Map<string, Promise<void>>();

async function oneAtATime<T>(path: string, work: () => Promise<T>): Promise<T> {
  for (let other = busy.get(path); other; other = busy.get(path)) await other;
  let done!: () => void;
  busy.set(path, new Promise<void>((r) => (done = r)));
  try {
    return await work();
  } finally {
    busy.delete(path);
    done();
  }
}

/** What one write has claimed of the quota, beyond the `replaced` bytes of the file it takes the place of. */
class Tab {
  claimed = 0;
  constructor(
    private readonly core: Core,
    private readonly tenantId: number,
    readonly replaced: number,
  ) {}

  covers(bytes: number): boolean {
    return bytes - this.replaced <= this.claimed;
  }

  /** Claims what writing `bytes` in all needs beyond what is claimed; throws the 507 when it does not fit. */
  async cover(bytes: number): Promise<void> {
    const more = bytes - this.replaced - this.claimed;
    if (more <= 0) return;
    const refused = await claimLocalBytes(this.core.db, this.core.config, this.tenantId, more);
    if (refused) throw refused;
    this.claimed += more;
  }

  /** Once `written` bytes took the replaced file's place: the count becomes exactly their difference. */
  settle(written: number): Promise<void> {
    return countLocalBytes(this.core.db, this.tenantId, written - this.replaced - this.claimed);
  }

  /** Once the write failed (the replaced file is still there): gives back the claim. */
  refund(): Promise<void> {
    return countLocalBytes(this.core.db, this.tenantId, -this.claimed);
  }
}

/** Passes a stream's bytes on once they are claimed: a source that brings more than it said is claimed as it goes, or stopped. */
class Meter extends Transform {
  private passed = 0;
  constructor(private readonly tab: Tab) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.passed += chunk.length;
    if (this.tab.covers(this.passed)) return done(null, chunk);
    this.tab.cover(this.passed).then(() => done(null, chunk), done);
  }
}

/** A local space's backend that counts the files written and removed through it against the tenant's byte quota. */
class ChargedBackend implements Backend {
  constructor(
    private readonly core: Core,
    private readonly tenantId: number,
    private readonly inner: LocalBackend,
  ) {}

  /** Runs `write` for `key`, one at a time per file, claiming `expected` bytes first and settling on what it wrote. */
  private charged<T extends { size: number }>(key: string, expected: number, write: (tab: Tab) => Promise<T>): Promise<T> {
    return oneAtATime(resolve(this.inner.root, key), async () => {
      const tab = new Tab(this.core, this.tenantId, (await this.inner.stat(key))?.size ?? 0);
      await tab.cover(expected);
      let written: T;
      try {
        written = await write(tab);
      } catch (err) {
        await tab.refund();
        throw err;
      }
      await tab.settle(written.size);
      return written;
    });
  }

  put(key: string, source: Readable | Buffer, options: PutOptions = {}): Promise<Put> {
    if (touchesReserved(key)) return this.inner.put(key, source, options);
    if (Buffer.isBuffer(source)) return this.charged(key, source.length, () => this.inner.put(key, source, options));
    // pipeline: a failure of either side ends both, so the write below sees it.
    return this.charged(key, options.size ?? 0, (tab) => this.inner.put(key, pipeline(source, new Meter(tab), () => {}), options));
  }

  async putFile(key: string, path: string, options: PutOptions = {}): Promise<{ size: number }> {
    if (touchesReserved(key)) return this.inner.putFile(key, path, options);
    // The copy is the file's size as it is then; the count is settled on what was copied.
    const expected = (await lstat(path).catch(() => undefined))?.size ?? 0;
    return this.charged(key, expected, () => this.inner.putFile(key, path, options));
  }

  async remove(key: string): Promise<void> {
    if (touchesReserved(key)) return this.inner.remove(key);
    await oneAtATime(resolve(this.inner.root, key), async () => {
      const gone = (await this.inner.stat(key))?.size ?? 0;
      await this.inner.remove(key);
      await countLocalBytes(this.core.db, this.tenantId, -gone);
    });
  }

  /** No charged writer renames (the shard store does, in its own folder): counted all the same, as `to` replaced by what `from` held. */
  async rename(from: string, to: string): Promise<void> {
    const counted = async (key: string) => (touchesReserved(key) ? 0 : ((await this.inner.stat(key))?.size ?? 0));
    const moving = (await this.inner.stat(from))?.size ?? 0;
    const tab = new Tab(this.core, this.tenantId, (await counted(from)) + (await counted(to)));
    const after = touchesReserved(to) ? 0 : moving;
    await tab.cover(after);
    try {
      await this.inner.rename(from, to);
    } catch (err) {
      await tab.refund();
      throw err;
    }
    await tab.settle(after);
  }

  get(key: string, range?: ByteRange): Promise<Readable> {
    return this.inner.get(key, range);
  }
  stat(key: string): Promise<BackendEntry | undefined> {
    return this.inner.stat(key);
  }
  list(prefix: string, options?: ListOptions): AsyncIterable<BackendEntry> {
    return this.inner.list(prefix, options);
  }
  makeDir(key: string): Promise<void> {
    return this.inner.makeDir(key);
  }
  localFile(key: string): Promise<string> {
    return this.inner.localFile(key);
  }
  openFile(key: string) {
    return this.inner.openFile(key);
  }
  cleanup(olderThanMs: number): Promise<number> {
    return this.inner.cleanup(olderThanMs);
  }
  describe(): string {
    return this.inner.describe();
  }
}
