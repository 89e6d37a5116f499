import { createHash } from 'node:crypto';
import { request as httpRequest, type Agent, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { S3Network } from './s3Location.ts';
import { encodeKeyPath, signedHeaders, type SigningKey } from './sigv4.ts';

/** What a HEAD of one object told. */
export interface HeadAnswer {
  size: number;
  lastModified?: Date;
  /** The object's user metadata (`x-amz-meta-*`), names without the prefix. */
  metadata: Record<string, string>;
}

/**
 * HEADs and small PUTs to a bucket addressed by path at an endpoint of its own (MinIO, Ceph,
 * s3rver, most self-hosted services), signed here (`sigv4.ts`) and sent on kept-alive connections,
 * without the AWS SDK. A sync to or from such a bucket is one such request per file (a HEAD to
 * read a file's kept time, a PUT to write a small file), and through the SDK each costs more CPU
 * than the request itself (its middleware, endpoint rules, signer; for a stream, the multipart
 * uploader; figures in docs/DECISIONS.md, "Sync"). The caller keeps the SDK for everything else and
 * for any answer this does not understand (undefined here: a network error, a status it cannot
 * use). A 400 or 403 may be a refusal of this signing, so after one every request is left to the
 * caller. It connects only where `network.outbound` allows, and a request silent for
 * `network.timeoutMs` is left to the caller's other path, as the SDK's requests do.
 */
export class S3Direct {
  private readonly base: URL;
  private readonly agent: Agent;
  private readonly transport: (options: RequestOptions, answer: (res: IncomingMessage) => void) => ReturnType<typeof httpRequest>;
  private refused = false;
  private readonly timeoutMs: number;

  constructor(
    endpoint: string,
    private readonly bucket: string,
    private readonly key: SigningKey,
    network: S3Network,
  ) {
    this.base = new URL(endpoint);
    this.timeoutMs = network.timeoutMs;
    this.agent = network.outbound.agent(this.base.protocol, { keepAlive: true, maxSockets: 50 });
    this.transport = this.base.protocol === 'https:' ? httpsRequest : httpRequest;
  }

  /** The object's size, time and metadata; `missing` for a 404 (a HEAD's has no body to tell a missing bucket from a missing key). */
  async head(objectKey: string): Promise<HeadAnswer | 'missing' | undefined> {
    const res = await this.request('HEAD', objectKey, undefined, {});
    if (res?.statusCode === 404) return 'missing';
    if (res?.statusCode !== 200) return undefined;
    const metadata: Record<string, string> = {};
    for (const [name, value] of Object.entries(res.headers)) {
      if (name.startsWith('x-amz-meta-') && typeof value === 'string') metadata[name.slice('x-amz-meta-'.length)] = value;
    }
    const modified = res.headers['last-modified'];
    return { size: Number(res.headers['content-length'] ?? 0), lastModified: modified ? new Date(modified) : undefined, metadata };
  }

  /** Stores `body` at `objectKey` with the given user metadata (names without `x-amz-meta-`); the stored object's ETag (as sent, maybe '') once stored. */
  async put(objectKey: string, body: Buffer, metadata: Record<string, string>): Promise<{ etag: string } | undefined> {
    const amzHeaders = Object.fromEntries(Object.entries(metadata).map(([name, value]) => [`x-amz-meta-${name.toLowerCase()}`, value]));
    const res = await this.request('PUT', objectKey, body, amzHeaders);
    if (res?.statusCode !== 200) return undefined;
    const etag = res.headers.etag;
    return { etag: typeof etag === 'string' ? etag : '' };
  }

  /** The response, read to its end (so its connection is free for the next); undefined if there is none to use. */
  private async request(
    method: string,
    objectKey: string,
    body: Buffer | undefined,
    amzHeaders: Record<string, string>,
  ): Promise<IncomingMessage | undefined> {
    if (this.refused) return undefined;
    const path = `${this.base.pathname.replace(/\/+$/, '')}/${encodeKeyPath(this.bucket)}/${encodeKeyPath(objectKey)}`;
    const host = this.base.host;
    const payloadSha256 = body ? createHash('sha256').update(body).digest('hex') : undefined;
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = this.transport(
        {
          protocol: this.base.protocol,
          hostname: this.base.hostname,
          port: this.base.port,
          path,
          method,
          agent: this.agent,
          headers: {
            host,
            ...(body ? { 'content-length': String(body.length) } : {}),
            ...signedHeaders(method, host, path, this.key, { payloadSha256, amzHeaders }),
          },
          timeout: this.timeoutMs,
        },
        (res) => {
          res.resume();
          res.once('end', () => resolve(res));
          res.once('error', reject);
        },
      );
      req.once('timeout', () => req.destroy(new Error(`no answer to a ${method} in ${this.timeoutMs / 1000} s`)));
      req.once('error', reject);
      req.end(body);
    }).catch(() => undefined);
    if (res?.statusCode === 400 || res?.statusCode === 403) this.refused = true;
    return res;
  }

  close(): void {
    this.agent.destroy();
  }
}
