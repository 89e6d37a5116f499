import { lstatSync } from 'node:fs';
import { resolve } from 'node:path';
import { pipeline, Transform, type Readable, type TransformCallback } from 'node:stream';
import type { Backend, BackendEntry, ByteRange, ListOptions, Put, PutOptions } from '../backends/backend.ts';
import { touchesReserved } from '../backends/layout.ts';
import { LocalBackend } from '../backends/localBackend.ts';
import type { SpaceHandle } from '../spaces/spaces.ts';
import type { LocalBytesBudget } from './quota.ts';

/**
 * The files Yunji writes into a tenant's local spaces for it (package exports, space and workspace
 * syncs) are on the server's own disk, so they count against the tenant's byte quota
 * (`local_bytes`, quota.ts). Writers of such files go through `filesBackendOf`, which takes a
 * file's bytes less those of the file it replaces from the operation's budget (a reservation of
 * the quota, claimed in chunks) before writing it and gives back what its removals free. Yunji's
 * own `.yunji` folders are not counted here (their objects are). The recount measures the spaces
 * again, for files changed outside Yunji.
 */

/** The backend to write the tenant's own files into `space` through, charging `budget` (released by the caller once done): a local space's counts them while the budget counts; an S3 space is the tenant's own storage. */
export function filesBackendOf(space: SpaceHandle, budget: LocalBytesBudget): Backend {
  return space.backend instanceof LocalBackend && budget.counting ? new ChargedBackend(budget, space.backend) : space.backend;
}

/** The bytes of the regular file at `path` (0: none, or not a file), synchronously: microseconds, where an async lstat is a thread-pool trip per file. */
function sizeOf(path: string): number {
  try {
    const st = lstatSync(path, { throwIfNoEntry: false });
    return st?.isFile() ? st.size : 0;
  } catch {
    return 0;
  }
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

/** What one write has taken from the budget, beyond the `replaced` bytes of the file it takes the place of. */
class Tab {
  taken = 0;
  constructor(
    private readonly budget: LocalBytesBudget,
    readonly replaced: number,
  ) {}

  covers(bytes: number): boolean {
    return bytes - this.replaced <= this.taken;
  }

  /** Takes what writing `bytes` in all needs beyond what is taken; throws the 507 when it does not fit. */
  async cover(bytes: number): Promise<void> {
    const more = bytes - this.replaced - this.taken;
    if (more <= 0) return;
    await this.budget.take(more);
    this.taken += more;
  }

  /** Once `written` bytes took the replaced file's place: what was taken beyond their difference goes back. */
  settle(written: number): Promise<void> {
    return this.budget.give(this.taken - (written - this.replaced));
  }

  /** Once the write failed (the replaced file is still there): gives back what was taken. */
  refund(): Promise<void> {
    return this.budget.give(this.taken);
  }
}

/** Passes a stream's bytes on once they are taken: a source that brings more than it said is charged as it goes, or stopped. */
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

/** A local space's backend that charges the files written and removed through it to a budget of the tenant's byte quota. */
class ChargedBackend implements Backend {
  constructor(
    private readonly budget: LocalBytesBudget,
    private readonly inner: LocalBackend,
  ) {}

  /** The bytes of the file at `key` (0: none); the write or removal that follows checks the path. */
  private sizeAt(key: string): number {
    return sizeOf(resolve(this.inner.root, key));
  }

  /** Runs `write` for `key`, one at a time per file, taking `expected` bytes first and settling on what it wrote. */
  private charged<T extends { size: number }>(key: string, expected: number, write: (tab: Tab) => Promise<T>): Promise<T> {
    return oneAtATime(resolve(this.inner.root, key), async () => {
      const tab = new Tab(this.budget, this.sizeAt(key));
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
    return this.charged(key, options.size ?? 0, (tab) =>
      this.inner.put(
        key,
        pipeline(source, new Meter(tab), () => {}),
        options,
      ),
    );
  }

  async putFile(key: string, path: string, options: PutOptions = {}): Promise<{ size: number }> {
    if (touchesReserved(key)) return this.inner.putFile(key, path, options);
    // The copy is the file's size as it is now (not as listed: the window for it to grow stays short); the count is settled on what was copied.
    return this.charged(key, sizeOf(path), () => this.inner.putFile(key, path, options));
  }

  async remove(key: string): Promise<void> {
    if (touchesReserved(key)) return this.inner.remove(key);
    await oneAtATime(resolve(this.inner.root, key), async () => {
      const gone = this.sizeAt(key);
      await this.inner.remove(key);
      await this.budget.give(gone);
    });
  }

  /** No charged writer renames (the shard store does, in its own folder): counted all the same, as `to` replaced by what `from` held. */
  async rename(from: string, to: string): Promise<void> {
    const counted = (key: string) => (touchesReserved(key) ? 0 : this.sizeAt(key));
    const moving = this.sizeAt(from);
    const tab = new Tab(this.budget, counted(from) + counted(to));
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
