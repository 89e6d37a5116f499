import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { encodeKeyPath, signedHeaders, type SigningKey } from './sigv4.ts';

/** What a HEAD of one object told. */
export interface HeadAnswer {
  status: number;
  size: number;
  lastModified?: Date;
  /** The object's user metadata (`x-amz-meta-*`), names without the prefix. */
  metadata: Record<string, string>;
}

/** A HEAD that has not answered by then is asked again by the caller's other path. */
const TIMEOUT_MS = 30_000;

/**
 * HEAD requests to a bucket addressed by path at an endpoint of its own (MinIO, Ceph, s3rver, most
 * self-hosted services), signed here (`sigv4.ts`) and sent on kept-alive connections, without the
 * AWS SDK. A sync's check of 10,000 objects in such a bucket is 10,000 HEADs, and the SDK spent
 * about 1 ms of CPU on each (its middleware, endpoint rules and signer), several times the cost of
 * the request itself; see docs/BENCHMARKS.md. The caller keeps the SDK for everything else and
 * for any answer this does not understand.
 */
export class S3Head {
  private readonly base: URL;
  private readonly agent: HttpAgent;
  private readonly send: (options: RequestOptions, answer: (res: IncomingMessage) => void) => ReturnType<typeof httpRequest>;

  constructor(
    endpoint: string,
    private readonly bucket: string,
    private readonly key: SigningKey,
  ) {
    this.base = new URL(endpoint);
    const https = this.base.protocol === 'https:';
    this.agent = https ? new HttpsAgent({ keepAlive: true, maxSockets: 50 }) : new HttpAgent({ keepAlive: true, maxSockets: 50 });
    this.send = https ? httpsRequest : httpRequest;
  }

  head(objectKey: string): Promise<HeadAnswer> {
    const path = `${this.base.pathname.replace(/\/+$/, '')}/${encodeKeyPath(this.bucket)}/${encodeKeyPath(objectKey)}`;
    const host = this.base.host;
    return new Promise((resolve, reject) => {
      const req = this.send(
        {
          protocol: this.base.protocol,
          hostname: this.base.hostname,
          port: this.base.port,
          path,
          method: 'HEAD',
          agent: this.agent,
          headers: { host, ...signedHeaders('HEAD', host, path, this.key) },
          timeout: TIMEOUT_MS,
        },
        (res) => {
          res.resume();
          const metadata: Record<string, string> = {};
          for (const [name, value] of Object.entries(res.headers)) {
            if (name.startsWith('x-amz-meta-') && typeof value === 'string') metadata[name.slice('x-amz-meta-'.length)] = value;
          }
          const modified = res.headers['last-modified'];
          resolve({
            status: res.statusCode ?? 0,
            size: Number(res.headers['content-length'] ?? 0),
            lastModified: modified ? new Date(modified) : undefined,
            metadata,
          });
        },
      );
      req.once('timeout', () => req.destroy(new Error(`no answer to a HEAD in ${TIMEOUT_MS / 1000} s`)));
      req.once('error', reject);
      req.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
