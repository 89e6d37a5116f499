import { PassThrough, Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  AbortMultipartUploadCommand,
  S3Client,
  UploadPartCopyCommand,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { OutboundBlockedError, remoteCode, unreachable } from '../lib/outbound.ts';
import { readSmall } from '../lib/streams.ts';
import { BackendError } from './backendError.ts';
import { assertKeyInside, type Backend, type BackendEntry, type ByteRange, type Put, type PutOptions } from './backend.ts';
import { bareEtag, type KeptTimes, type WrittenObject } from './keptTimes.ts';
import { RESERVED_DIR } from './layout.ts';
import { S3Direct } from './s3Direct.ts';
import { withHold } from './writeHolds.ts';
import { describeS3, type S3Location, type S3Network } from './s3Location.ts';

// The SDK is pinned to a release that supports Node 20 (see docs/DECISIONS.md); its reminder that
// later releases will not is not news to an operator reading our logs.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** Objects larger than this are copied in parts (S3's single CopyObject limit is 5 GiB). */
const COPY_LIMIT = 5 * 1024 ** 3;
const COPY_PART = 1024 ** 3;
const UPLOAD_PART = 8 * 1024 ** 2;
/** Content up to this size is gathered and sent in one PUT. */
const SMALL_PUT = 1024 * 1024;
const MTIME_META = 'yunji-mtime';

/** A bucket of any S3-compatible service, through the AWS SDK. Keys are used as object keys. */
export class S3Backend implements Backend {
  private readonly client: S3Client;
  /** HEADs and small PUTs without the SDK, for buckets addressed by path at their own endpoint. */
  private readonly direct: S3Direct | undefined;

  constructor(
    private readonly location: S3Location,
    /** Where requests may connect (every one goes through its agents), and how long the endpoint may stay silent. */
    network: S3Network,
    /** Where the file times of what this writes are recorded, so that listings can give them. */
    private readonly times?: KeptTimes,
  ) {
    const key = { accessKeyId: location.accessKeyId, secretAccessKey: location.secretAccessKey, region: location.region || 'us-east-1' };
    this.direct = location.endpoint && location.forcePathStyle ? new S3Direct(location.endpoint, location.bucket, key, network) : undefined;
    this.client = new S3Client({
      // The SDK makes its NodeHttpHandler of these options (and destroys the agents with the client).
      // An endpoint that accepts and never answers fails the request (as unreachable) instead of
      // holding it: a time limit to connect, and one on silence (the socket's idle time), never on
      // a whole transfer that keeps moving. (Its `requestTimeout` would be the whole request's.)
      requestHandler: {
        httpAgent: network.outbound.agent('http:', { keepAlive: true, maxSockets: 50 }),
        httpsAgent: network.outbound.agent('https:', { keepAlive: true, maxSockets: 50 }),
        connectionTimeout: network.timeoutMs,
        socketTimeout: network.timeoutMs,
      },
      endpoint: location.endpoint || undefined,
      region: location.region || 'us-east-1',
      forcePathStyle: location.forcePathStyle,
      credentials: { accessKeyId: location.accessKeyId, secretAccessKey: location.secretAccessKey },
      // Checksums only where S3 requires them: several S3-compatible services reject the newer
      // trailing-checksum uploads. Integrity is checked by our own SHA-256 anyway.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 3,
    });
  }

  describe(): string {
    return describeS3(this.location);
  }

  close(): void {
    this.client.destroy();
    this.direct?.close();
  }

  put(key: string, source: Readable | Buffer, options: PutOptions = {}): Promise<Put> {
    // Every sweeper stays off its multipart upload while it writes, however long that takes.
    return withHold(() => this.write(key, source, options));
  }

  private async write(key: string, source: Readable | Buffer, options: PutOptions): Promise<Put> {
    assertKeyInside(key);
    const Metadata = options.mtimeMs !== undefined ? { [MTIME_META]: String(Math.round(options.mtimeMs)) } : undefined;
    // S3 cannot say what a PUT replaced: a HEAD before it can (a race with another writer of the key aside).
    const replaced = options.reportReplaced ? (await this.stat(key)) !== undefined : undefined;
    // A stream that ends within SMALL_PUT bytes goes as one PUT instead of through the multipart uploader.
    const bytes = Buffer.isBuffer(source) ? source : await readSmall(source, SMALL_PUT);
    if (bytes) {
      let etag = (await this.direct?.put(key, bytes, Metadata ?? {}))?.etag;
      if (etag === undefined) {
        // Not sent directly, or not taken: the SDK sends it (again: a PUT may be repeated), retries and names the error.
        try {
          etag = (
            await this.client.send(
              new PutObjectCommand({ Bucket: this.location.bucket, Key: key, Body: bytes, ContentLength: bytes.length, Metadata }),
            )
          ).ETag;
        } catch (err) {
          throw s3Error(err, key, this);
        }
      }
      await this.recordTime(key, etag, bytes.length, options.mtimeMs);
      return { size: bytes.length, replaced };
    }
    source = source as Readable;
    let size = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        size += chunk.length;
        done(null, chunk);
      },
    });
    const body = new PassThrough({ highWaterMark: UPLOAD_PART });
    const upload = new Upload({
      client: this.client,
      params: {
        Bucket: this.location.bucket,
        Key: key,
        Body: body,
        Metadata,
      },
      partSize: UPLOAD_PART,
      queueSize: 4,
      leavePartsOnError: false,
    });
    const feeding = pipeline(source, meter, body);
    let etag: string | undefined;
    try {
      [, { ETag: etag }] = await Promise.all([feeding, upload.done()]);
    } catch (err) {
      await upload.abort().catch(() => undefined);
      body.destroy();
      throw s3Error(err, key, this);
    }
    await this.recordTime(key, etag, size, options.mtimeMs);
    return { size, replaced };
  }

  /**
   * Records the file time an object was written with. Only puts with a time are recorded: a put
   * without one over a recorded key leaves a record that matches only if the bytes are the same,
   * and then the time it gives is that of the same content. A record that cannot be written costs
   * a HEAD later, so the write, which S3 has taken, does not fail for it.
   */
  private async recordTime(key: string, etag: string | undefined, size: number, mtimeMs: number | undefined): Promise<void> {
    const tag = bareEtag(etag);
    if (!this.times || mtimeMs === undefined || tag === undefined) return;
    await this.times.record(key, { etag: tag, size, mtimeMs }).catch(() => undefined);
  }

  async get(key: string, range?: ByteRange): Promise<Readable> {
    assertKeyInside(key);
    try {
      const out = await this.client.send(
        new GetObjectCommand({ Bucket: this.location.bucket, Key: key, Range: range ? `bytes=${range.start}-${range.end}` : undefined }),
      );
      return out.Body as Readable;
    } catch (err) {
      // A range that starts past the end (S3 answers 416) reads nothing, as from a file.
      if (range && err instanceof S3ServiceException && err.$metadata.httpStatusCode === 416) return Readable.from([]);
      throw s3Error(err, key, this);
    }
  }

  async stat(key: string): Promise<BackendEntry | undefined> {
    assertKeyInside(key);
    if (key === '') return undefined;
    // Without a usable direct answer the SDK asks again, retries and names the error. Its HEAD's 404
    // cannot tell a missing bucket from a missing key either.
    const answer = await this.direct?.head(key);
    if (answer === 'missing') return undefined;
    if (answer) return { key, size: answer.size, mtimeMs: mtimeOf(answer.metadata, answer.lastModified) };
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.location.bucket, Key: key }));
      return { key, size: head.ContentLength ?? 0, mtimeMs: mtimeOf(head.Metadata, head.LastModified) };
    } catch (err) {
      const failure = s3Error(err, key, this);
      if (failure instanceof BackendError && failure.code === 'not_found' && !isMissingBucket(err)) return undefined;
      throw failure;
    }
  }

  async remove(key: string): Promise<void> {
    assertKeyInside(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.location.bucket, Key: key }));
    } catch (err) {
      const failure = s3Error(err, key, this);
      if (!(failure instanceof BackendError && failure.code === 'not_found' && !isMissingBucket(err))) throw failure;
    }
    await this.times?.forget([key]).catch(() => undefined);
  }

  /** S3 has no rename: a server-side copy (no bytes pass through Yunji), then a delete. */
  async rename(from: string, to: string): Promise<void> {
    assertKeyInside(from);
    assertKeyInside(to);
    const bucket = this.location.bucket;
    const source = `${bucket}/${encodeURIComponent(from).replaceAll('%2F', '/')}`;
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: bucket, Key: from }));
      const size = head.ContentLength ?? 0;
      if (size <= COPY_LIMIT) {
        await this.client.send(new CopyObjectCommand({ Bucket: bucket, Key: to, CopySource: source, MetadataDirective: 'COPY' }));
      } else {
        await this.copyInParts(source, to, size, head.Metadata);
      }
      await this.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: from }));
    } catch (err) {
      throw s3Error(err, from, this);
    }
  }

  private async copyInParts(source: string, to: string, size: number, metadata: Record<string, string> | undefined): Promise<void> {
    const bucket = this.location.bucket;
    const { UploadId } = await this.client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: to, Metadata: metadata }));
    try {
      const parts: { ETag: string; PartNumber: number }[] = [];
      for (let start = 0, n = 1; start < size; start += COPY_PART, n++) {
        const end = Math.min(size, start + COPY_PART) - 1;
        const out = await this.client.send(
          new UploadPartCopyCommand({
            Bucket: bucket,
            Key: to,
            UploadId,
            PartNumber: n,
            CopySource: source,
            CopySourceRange: `bytes=${start}-${end}`,
          }),
        );
        parts.push({ ETag: out.CopyPartResult?.ETag ?? '', PartNumber: n });
      }
      await this.client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: to, UploadId, MultipartUpload: { Parts: parts } }));
    } catch (err) {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: to, UploadId })).catch(() => undefined);
      throw err;
    }
  }

  /** Aborts multipart uploads that a crashed write left open. */
  async cleanup(olderThanMs: number): Promise<number> {
    let aborted = 0;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    try {
      do {
        const page = await this.client.send(
          new ListMultipartUploadsCommand({ Bucket: this.location.bucket, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
        );
        for (const u of page.Uploads ?? []) {
          if ((u.Initiated?.getTime() ?? 0) >= olderThanMs) continue;
          await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.location.bucket, Key: u.Key, UploadId: u.UploadId }));
          aborted++;
        }
        keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
        uploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
      } while (keyMarker);
    } catch (err) {
      throw s3Error(err, '', this);
    }
    return aborted;
  }

  async *list(prefix: string): AsyncIterable<BackendEntry> {
    const exact = await this.stat(prefix);
    if (exact) {
      yield exact;
      return;
    }
    const folder = prefix === '' ? '' : `${prefix.replace(/\/+$/, '')}/`;
    let token: string | undefined;
    let listed: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(new ListObjectsV2Command({ Bucket: this.location.bucket, Prefix: folder, ContinuationToken: token }));
      } catch (err) {
        throw s3Error(err, prefix, this);
      }
      const items = page.Contents ?? [];
      const last = items.at(-1)?.Key;
      const known = last !== undefined ? await this.keptTimesOf(items, { after: listed, from: folder, upTo: last }) : undefined;
      for (const item of items) {
        const key = item.Key ?? '';
        // Folder markers (keys ending in '/') hold no file; nothing in Yunji's own folder is listed.
        if (key.endsWith('/') || key.slice(folder.length).split('/').slice(0, -1).includes(RESERVED_DIR)) continue;
        const size = item.Size ?? 0;
        const kept = known?.get(key);
        if (kept && kept.size === size && kept.etag === bareEtag(item.ETag)) yield { key, size, mtimeMs: kept.mtimeMs };
        else yield { key, size, mtimeMs: item.LastModified?.getTime() ?? 0, approximateTime: true };
      }
      listed = last ?? listed;
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /**
   * The recorded times of a page's objects. Records in the page's range of keys that the page does
   * not list are of objects deleted since (by another tool): they are dropped.
   */
  private async keptTimesOf(
    items: { Key?: string }[],
    range: { after?: string; from: string; upTo: string },
  ): Promise<Map<string, WrittenObject> | undefined> {
    if (!this.times) return undefined;
    let known: Map<string, WrittenObject>;
    try {
      known = await this.times.between(range);
    } catch {
      return undefined; // every time is then read by a HEAD, as without records
    }
    if (known.size === 0) return known;
    const present = new Set(items.map((i) => i.Key));
    const gone = [...known.keys()].filter((k) => !present.has(k));
    if (gone.length > 0) await this.times.forget(gone).catch(() => undefined);
    return known;
  }
}

function mtimeOf(metadata: Record<string, string> | undefined, lastModified: Date | undefined): number {
  const kept = Number(metadata?.[MTIME_META]);
  return Number.isFinite(kept) && kept > 0 ? kept : (lastModified?.getTime() ?? 0);
}

function isMissingBucket(err: unknown): boolean {
  return err instanceof S3ServiceException && err.name === 'NoSuchBucket';
}

// Errors of the connection, not of S3: refused, reset, timed out, not HTTP, TLS.
const CONNECTION_CODE =
  /^(E(CONN|HOST|NET|AI_|NOTFOUND|PIPE|PROTO|TIMEDOUT|ADDR)|HPE_|ERR_(TLS|SSL|HTTP)_|CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED)/;

/**
 * The service's answer as a BackendError a user can act on: its error code and HTTP status, never
 * its message (the remote body); a failed connection only as unreachable.
 */
function s3Error(err: unknown, key: string, backend: S3Backend): Error {
  if (err instanceof BackendError || err instanceof OutboundBlockedError) return err;
  if (err instanceof S3ServiceException) {
    const status = err.$metadata.httpStatusCode;
    const reason = `${remoteCode(err.name)} (HTTP ${status ?? '?'})`;
    if (err.name === 'NoSuchBucket') return new BackendError(`${backend.describe()}: the bucket does not exist: ${reason}`, 'not_found');
    if (err.name === 'NoSuchKey' || err.name === 'NotFound' || status === 404)
      return new BackendError(`'${key}' does not exist in ${backend.describe()}`, 'not_found');
    if (status === 401 || status === 403 || ['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch'].includes(err.name)) {
      return new BackendError(`${backend.describe()} refused the credentials: ${reason}`, 'denied');
    }
    return new BackendError(`${backend.describe()} failed on '${key}': ${reason}`, 'failed');
  }
  const { code, name } = err as NodeJS.ErrnoException;
  if ((typeof code === 'string' && CONNECTION_CODE.test(code)) || name === 'TimeoutError') {
    return new BackendError(unreachable(backend.describe()).message, 'unreachable', { cause: err });
  }
  // An answer the SDK could not read: its message may quote the body.
  const response = (err as { $response?: { statusCode?: number } }).$response;
  if (response)
    return new BackendError(`${backend.describe()} did not answer as S3 does (HTTP ${response.statusCode ?? '?'})`, 'failed', {
      cause: err,
    });
  return err as Error;
}
