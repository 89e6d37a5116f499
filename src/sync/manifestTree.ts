import type { Readable } from 'node:stream';
import { setImmediate } from 'node:timers/promises';
import { AppError } from '../lib/errors.ts';
import { objectPathProblem } from '../lib/objectPaths.ts';
import type { OutboundPolicy } from '../lib/outbound.ts';
import { httpGet } from './httpGet.ts';
import { ManifestScanner } from './manifestEntries.ts';
import { compareUtf8, type SyncTree, type TreeEntry } from './tree.ts';

/**
 * Largest manifest read, most entries it may list, and the largest entry (or other JSON value in
 * it): beyond them the sync fails, saying so. The manifest is read as it arrives and never held
 * whole; what is kept are the entries it lists.
 */
export const MAX_MANIFEST_BYTES = 256 * 1024 * 1024;
export const MAX_MANIFEST_ENTRIES = 1_000_000;
export const MAX_MANIFEST_ENTRY_BYTES = 64 * 1024;

interface FetchSettings {
  outbound: OutboundPolicy;
  timeoutMs: number;
  /** Sent with the manifest's request (an Authorization header, say), not with the files'. */
  headers?: Record<string, string>;
}

/** An entry the manifest lists that cannot be synced, and why. */
export interface ManifestProblem {
  path: string;
  message: string;
}

/** Entries checked between two turns of the event loop: a manifest of a million entries must not stall the server. */
const ENTRIES_PER_TURN = 10_000;

function timeOf(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value;
  if (typeof value === 'string') {
    const ms = Date.parse(value);
    if (!Number.isNaN(ms)) return ms;
  }
  return undefined;
}

/**
 * An `http_manifest` source: a JSON array (or `{files: [...]}`) of `{path, url, size?, sha256?,
 * etag?, mtime?}`, each `url` absolute or relative to where the manifest was found (after
 * redirects). What the manifest says decides whether a file changed: its SHA-256, else its ETag,
 * else size and time; an entry with none of these is fetched every time (its bytes are stored
 * once all the same).
 */
export class ManifestTree implements SyncTree {
  private list: TreeEntry[] = [];
  private base: URL;

  constructor(
    private readonly url: URL,
    private readonly settings: FetchSettings,
  ) {
    this.base = url;
  }

  /**
   * Reads and checks the manifest. Each entry that cannot be synced is told to `problem` as it is
   * found (none is kept here: a manifest may list a million of them).
   */
  async load(signal: AbortSignal, problem: (p: ManifestProblem) => void): Promise<void> {
    const what = `the manifest at ${this.url.origin}${this.url.pathname}`;
    const { body, url: found } = await httpGet(this.url, { ...this.settings, signal });
    // Its entries' relative URLs are relative to where it was found.
    this.base = found;
    const scanner = new ManifestScanner({ maxEntries: MAX_MANIFEST_ENTRIES, maxValueBytes: MAX_MANIFEST_ENTRY_BYTES }, what);
    const entries: TreeEntry[] = [];
    let size = 0;
    let i = 0;
    try {
      for await (const chunk of body) {
        size += (chunk as Buffer).length;
        if (size > MAX_MANIFEST_BYTES) throw new AppError('bad_request', `${what} is larger than ${MAX_MANIFEST_BYTES} bytes`);
        for (const value of scanner.push(chunk as Buffer)) {
          const f = (value ?? {}) as Record<string, unknown>;
          const path = typeof f.path === 'string' ? f.path : `#${i}`;
          const entry = this.entryOf(f, path);
          if (typeof entry === 'string') problem({ path, message: `manifest entry ${i}: ${entry}` });
          else entries.push(entry);
          // Checking a million entries gives the event loop turns (the body's chunks give more).
          if (++i % ENTRIES_PER_TURN === 0) {
            await setImmediate();
            signal.throwIfAborted();
          }
        }
      }
      scanner.end();
    } catch (err) {
      // Refused part way: the rest is not read.
      body.destroy();
      throw err;
    }
    entries.sort((a, b) => compareUtf8(a.path, b.path));
    this.list = entries.filter((e, i) => {
      if (i === 0 || entries[i - 1]!.path !== e.path) return true;
      problem({ path: e.path, message: 'the manifest lists this path more than once (the first entry is synced)' });
      return false;
    });
  }

  /** The entry, or what is wrong with it (returned, not thrown: an exception per refused entry is costly over a million entries). */
  private entryOf(f: Record<string, unknown>, path: string): TreeEntry | string {
    if (typeof f.path !== 'string') return "'path' must be a string";
    const pathProblem = objectPathProblem(path, 'path');
    if (pathProblem !== undefined) return pathProblem;
    if (typeof f.url !== 'string' || f.url.length === 0 || f.url.length > 8192) return "'url' must be a URL of at most 8192 characters";
    const url = URL.parse(f.url, this.base.href);
    if (url === null) return `'url' is not a URL: '${f.url.slice(0, 200)}'`;
    if (f.size !== undefined && !(Number.isSafeInteger(f.size) && (f.size as number) >= 0)) return "'size' must be a whole number of bytes";
    if (f.sha256 !== undefined && !(typeof f.sha256 === 'string' && /^[0-9a-fA-F]{64}$/.test(f.sha256)))
      return "'sha256' must be 64 hex digits";
    if (f.etag !== undefined && !(typeof f.etag === 'string' && f.etag.length <= 256))
      return "'etag' must be a string of at most 256 characters";
    const mtime = f.mtime === undefined ? undefined : timeOf(f.mtime);
    if (f.mtime !== undefined && mtime === undefined) return "'mtime' must be epoch milliseconds or an ISO-8601 time";
    return {
      path,
      size: (f.size as number | undefined) ?? -1,
      mtimeMs: mtime ?? Number.NaN,
      approximateTime: false,
      emptyDir: false,
      key: url.toString(),
      ...(typeof f.sha256 === 'string' ? { hash: f.sha256.toUpperCase() } : {}),
      ...(typeof f.etag === 'string' ? { tag: f.etag } : {}),
    };
  }

  async *entries(_emptyDirs: boolean, only?: string): AsyncIterable<TreeEntry> {
    for (const e of this.list) if (only === undefined || e.path === only) yield e;
  }

  read(entry: TreeEntry, signal: AbortSignal): Promise<Readable> {
    return httpGet(new URL(entry.key), { outbound: this.settings.outbound, timeoutMs: this.settings.timeoutMs, signal }).then(
      (answer) => answer.body,
    );
  }

  write(): Promise<{ size: number }> {
    throw new Error('a manifest source is read-only');
  }

  remove(): Promise<void> {
    throw new Error('a manifest source is read-only');
  }
}
