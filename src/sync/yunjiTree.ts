import type { Readable } from 'node:stream';
import { remoteCode, type OutboundPolicy } from '../lib/outbound.ts';
import { httpGet } from './httpGet.ts';
import type { SyncTree, TreeEntry } from './tree.ts';

interface RemoteSettings {
  outbound: OutboundPolicy;
  timeoutMs: number;
  /** The run's: a cancel also stops a listing request. */
  signal: AbortSignal;
}

interface ListedObject {
  objectID: number;
  path: string;
  size: string;
  fileHash: string;
  updateTime: string;
}

/** Largest page of a listing read (a page of 1,000 objects is about 300 KB). */
const MAX_PAGE_BYTES = 16 * 1024 * 1024;

/**
 * A `yunji` source: a package on another Yunji server, read through its `/v1` API with an API key
 * of that server. Its listing comes in byte order and names each object's SHA-256, so an object
 * already here with the same content is never fetched again.
 */
export class YunjiTree implements SyncTree {
  constructor(
    private readonly base: URL,
    private readonly packageId: number,
    private readonly apiKey: string,
    private readonly settings: RemoteSettings,
  ) {}

  private async json(url: URL): Promise<unknown> {
    const { body } = await httpGet(url, {
      ...this.settings,
      headers: { authorization: `Bearer ${this.apiKey}`, accept: 'application/json' },
    });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of body) {
      size += (chunk as Buffer).length;
      if (size > MAX_PAGE_BYTES) {
        body.destroy();
        throw new Error(`${url.origin} sent a listing page larger than ${MAX_PAGE_BYTES} bytes`);
      }
      chunks.push(chunk as Buffer);
    }
    const text = Buffer.concat(chunks, size).toString('utf8');
    try {
      return JSON.parse(text);
    } catch {
      throw new Error(`${url.origin} did not answer JSON (is it a Yunji server?)`);
    }
  }

  async *entries(_emptyDirs: boolean, only?: string): AsyncIterable<TreeEntry> {
    let token = '';
    do {
      const url = new URL('/v1/object/listByPath', this.base);
      url.search = new URLSearchParams({
        packageID: String(this.packageId),
        path: only ?? '',
        isPrefix: only === undefined ? 'true' : 'false',
        maxKeys: '1000',
        ...(token ? { continuationToken: token } : {}),
      }).toString();
      const page = (await this.json(url)) as {
        code?: unknown;
        data?: { objects: ListedObject[]; nextContinuationToken: string; isTruncated: boolean };
      };
      // Only its code is told: the message is the remote server's text.
      if (page.code !== 'OK' || !page.data)
        throw new Error(`the Yunji server at ${this.base.origin} refused the listing (${remoteCode(page.code)})`);
      for (const o of page.data.objects) {
        yield {
          path: o.path,
          size: Number(o.size),
          mtimeMs: Date.parse(o.updateTime),
          approximateTime: false,
          emptyDir: false,
          key: String(o.objectID),
          ...(/^Full[0-9A-F]{64}$/.test(o.fileHash) ? { hash: o.fileHash.slice(4) } : {}),
        };
      }
      token = page.data.isTruncated ? page.data.nextContinuationToken : '';
    } while (token);
  }

  read(entry: TreeEntry, signal: AbortSignal): Promise<Readable> {
    const url = new URL('/v1/object/download', this.base);
    url.search = new URLSearchParams({ objectID: entry.key }).toString();
    return httpGet(url, { ...this.settings, signal, headers: { authorization: `Bearer ${this.apiKey}` } }).then((answer) => answer.body);
  }

  write(): Promise<{ size: number }> {
    throw new Error('a yunji source is read-only');
  }

  remove(): Promise<void> {
    throw new Error('a yunji source is read-only');
  }
}
