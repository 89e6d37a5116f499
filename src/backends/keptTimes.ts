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
 * content. The records live in Yunji's database (spaces/s3ObjectTimes.ts); a backend sees only this.
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

/** An ETag as S3 sends it, quoted; compared and kept without the quotes. */
export function bareEtag(etag: string | undefined): string | undefined {
  if (etag === undefined || etag === '') return undefined;
  return etag.replace(/^(W\/)?"|"$/g, '');
}
