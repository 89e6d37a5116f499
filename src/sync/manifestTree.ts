import type { Readable } from 'node:stream';
import { AppError } from '../errors.ts';
import { checkObjectPath } from '../storage/paths.ts';
import { httpGet } from './httpGet.ts';
import { compareUtf8, type SyncTree, type TreeEntry } from './tree.ts';

/** Largest manifest read, and most entries it may list: beyond them the sync fails, saying so. */
export const MAX_MANIFEST_BYTES = 256 * 1024 * 1024;
export const MAX_MANIFEST_ENTRIES = 1_000_000;

interface FetchSettings {
  timeoutMs: number;
  allowPrivate: boolean;
  /** Sent with the manifest's request (an Authorization header, say), not with the files'. */
  headers?: Record<string, string>;
}

/** An entry the manifest lists that cannot be synced, and why. */
export interface ManifestProblem {
  path: string;
  message: string;
}

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
 * etag?, mtime?}`, each `url` absolute or relative to the manifest's. What the manifest says
 * decides whether a file changed: its SHA-256, else its ETag, else size and time; an entry with
 * none of these is fetched every time (its bytes are stored once all the same).
 */
export class ManifestTree implements SyncTree {
  private list: TreeEntry[] = [];
  readonly problems: ManifestProblem[] = [];

  constructor(
    private readonly url: URL,
    private readonly settings: FetchSettings,
  ) {}

  async load(signal: AbortSignal): Promise<void> {
    const body = await httpGet(this.url, { ...this.settings, signal });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of body) {
      size += (chunk as Buffer).length;
      if (size > MAX_MANIFEST_BYTES) {
        body.destroy();
        throw new AppError('bad_request', `the manifest at ${this.url.origin}${this.url.pathname} is larger than ${MAX_MANIFEST_BYTES} bytes`);
      }
      chunks.push(chunk as Buffer);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.concat(chunks, size).toString('utf8'));
    } catch {
      throw new AppError('bad_request', `the manifest at ${this.url.origin}${this.url.pathname} is not JSON`);
    }
    const files = Array.isArray(parsed) ? parsed : (parsed as { files?: unknown } | null)?.files;
    if (!Array.isArray(files)) throw new AppError('bad_request', 'the manifest is neither a JSON array nor an object with a "files" array');
    if (files.length > MAX_MANIFEST_ENTRIES) throw new AppError('bad_request', `the manifest lists ${files.length} files, more than ${MAX_MANIFEST_ENTRIES}`);
    const entries: TreeEntry[] = [];
    files.forEach((raw: unknown, i: number) => {
      const f = (raw ?? {}) as Record<string, unknown>;
      const path = typeof f.path === 'string' ? f.path : `#${i}`;
      try {
        entries.push(this.entryOf(f, path));
      } catch (err) {
        this.problems.push({ path, message: `manifest entry ${i}: ${(err as Error).message}` });
      }
    });
    entries.sort((a, b) => compareUtf8(a.path, b.path));
    this.list = entries.filter((e, i) => {
      if (i === 0 || entries[i - 1]!.path !== e.path) return true;
      this.problems.push({ path: e.path, message: 'the manifest lists this path more than once (the first entry is synced)' });
      return false;
    });
  }

  private entryOf(f: Record<string, unknown>, path: string): TreeEntry {
    if (typeof f.path !== 'string') throw new Error("'path' must be a string");
    checkObjectPath(path, 'path');
    if (typeof f.url !== 'string' || f.url.length === 0 || f.url.length > 8192) throw new Error("'url' must be a URL of at most 8192 characters");
    let url: URL;
    try {
      url = new URL(f.url, this.url);
    } catch {
      throw new Error(`'url' is not a URL: '${f.url.slice(0, 200)}'`);
    }
    if (f.size !== undefined && !(Number.isSafeInteger(f.size) && (f.size as number) >= 0)) throw new Error("'size' must be a whole number of bytes");
    if (f.sha256 !== undefined && !(typeof f.sha256 === 'string' && /^[0-9a-fA-F]{64}$/.test(f.sha256))) throw new Error("'sha256' must be 64 hex digits");
    if (f.etag !== undefined && !(typeof f.etag === 'string' && f.etag.length <= 256)) throw new Error("'etag' must be a string of at most 256 characters");
    const mtime = f.mtime === undefined ? undefined : timeOf(f.mtime);
    if (f.mtime !== undefined && mtime === undefined) throw new Error("'mtime' must be epoch milliseconds or an ISO-8601 time");
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
    return httpGet(new URL(entry.key), { timeoutMs: this.settings.timeoutMs, allowPrivate: this.settings.allowPrivate, signal });
  }

  write(): Promise<{ size: number }> {
    throw new Error('a manifest source is read-only');
  }

  remove(): Promise<void> {
    throw new Error('a manifest source is read-only');
  }
}
