import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { createHash } from 'node:crypto';
import { encodeKeyPath, signedHeaders, type SigningKey } from './sigv4.ts';

/** What a HEAD of one object told. */
export interface HeadAnswer {
  status: number;
  size: number;
  lastModified?: Date;
  /** The object's user metadata (`x-amz-meta-*`), names without the prefix. */
  metadata: Record<string, string>;
}

/** A request that has not answered by then is sent again by the caller's other path. */
const TIMEOUT_MS = 30_000;

/**
 * HEADs and small PUTs to a bucket addressed by path at an endpoint of its own (MinIO, Ceph,
 * s3rver, most self-hosted services), signed here (`sigv4.ts`) and sent on kept-alive connections,
 * without the AWS SDK. A sync to or from such a bucket is one such request per file (a HEAD to
 * read a file's kept time, a PUT to write a small file), and through the SDK each cost about 1 ms
 * of CPU more than the request itself (its middleware, endpoint rules, signer; for a stream, the
 * multipart uploader); see docs/BENCHMARKS.md. The caller keeps the SDK for everything else and
 * for any answer this does not understand.
 */
export class S3Direct {
  private readonly base: URL;
  private readonly agent: HttpAgent;
  private readonly transport: (options: RequestOptions, answer: (res: IncomingMessage) => void) => ReturnType<typeof httpRequest>;

  constructor(
    endpoint: string,
    private readonly bucket: string,
    private readonly key: SigningKey,
  ) {
    this.base = new URL(endpoint);
    const https = this.base.protocol === 'https:';
    this.agent = https ? new HttpsAgent({ keepAlive: true, maxSockets: 50 }) : new HttpAgent({ keepAlive: true, maxSockets: 50 });
    this.transport = https ? httpsRequest : httpRequest;
  }

  head(objectKey: string): Promise<HeadAnswer> {
    return this.request('HEAD', objectKey, undefined, {}, (res) => {
      const metadata: Record<string, string> = {};
      for (const [name, value] of Object.entries(res.headers)) {
        if (name.startsWith('x-amz-meta-') && typeof value === 'string') metadata[name.slice('x-amz-meta-'.length)] = value;
      }
      const modified = res.headers['last-modified'];
      return { status: res.statusCode ?? 0, size: Number(res.headers['content-length'] ?? 0), lastModified: modified ? new Date(modified) : undefined, metadata };
    });
  }

  /** Stores `body` at `objectKey` with the given user metadata (names without `x-amz-meta-`); answers the HTTP status. */
  put(objectKey: string, body: Buffer, metadata: Record<string, string>): Promise<number> {
    const amzHeaders = Object.fromEntries(Object.entries(metadata).map(([name, value]) => [`x-amz-meta-${name.toLowerCase()}`, value]));
    return this.request('PUT', objectKey, body, amzHeaders, (res) => res.statusCode ?? 0);
  }

  private request<T>(method: string, objectKey: string, body: Buffer | undefined, amzHeaders: Record<string, string>, answer: (res: IncomingMessage) => T): Promise<T> {
    const path = `${this.base.pathname.replace(/\/+$/, '')}/${encodeKeyPath(this.bucket)}/${encodeKeyPath(objectKey)}`;
    const host = this.base.host;
    const payloadSha256 = body ? createHash('sha256').update(body).digest('hex') : undefined;
    return new Promise((resolve, reject) => {
      const req = this.transport(
        {
          protocol: this.base.protocol,
          hostname: this.base.hostname,
          port: this.base.port,
          path,
          method,
          agent: this.agent,
          headers: { host, ...(body ? { 'content-length': String(body.length) } : {}), ...signedHeaders(method, host, path, this.key, { payloadSha256, amzHeaders }) },
          timeout: TIMEOUT_MS,
        },
        (res) => {
          res.resume();
          // Answered once the response has been read to its end, so the connection is free for the next.
          res.once('end', () => resolve(answer(res)));
          res.once('error', reject);
        },
      );
      req.once('timeout', () => req.destroy(new Error(`no answer to a ${method} in ${TIMEOUT_MS / 1000} s`)));
      req.once('error', reject);
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
