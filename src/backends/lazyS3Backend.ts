import type { Readable } from 'node:stream';
import type { Backend, BackendEntry, ByteRange, ListOptions, Put, PutOptions } from './backend.ts';
import type { KeptTimes } from './keptTimes.ts';
import { describeS3, type S3Location, type S3Network } from './s3Location.ts';

/**
 * An S3-compatible space whose client is loaded on first use: the AWS SDK's memory is not paid by
 * a server that keeps its bytes on local disks (docs/DECISIONS.md, "Figures behind code comments").
 */
export class LazyS3Backend implements Backend {
  private loading: Promise<Backend> | undefined;

  constructor(
    private readonly location: S3Location,
    private readonly network: S3Network,
    private readonly times?: KeptTimes,
  ) {}

  private real(): Promise<Backend> {
    this.loading ??= import('./s3Backend.ts').then(({ S3Backend }) => new S3Backend(this.location, this.network, this.times));
    return this.loading;
  }

  describe(): string {
    return describeS3(this.location);
  }

  close(): void {
    void this.loading?.then((b) => b.close?.());
  }

  async put(key: string, source: Readable | Buffer, options?: PutOptions): Promise<Put> {
    return (await this.real()).put(key, source, options);
  }

  async get(key: string, range?: ByteRange): Promise<Readable> {
    return (await this.real()).get(key, range);
  }

  async stat(key: string): Promise<BackendEntry | undefined> {
    return (await this.real()).stat(key);
  }

  async remove(key: string): Promise<void> {
    return (await this.real()).remove(key);
  }

  async rename(from: string, to: string): Promise<void> {
    return (await this.real()).rename(from, to);
  }

  async cleanup(olderThanMs: number): Promise<number> {
    return (await this.real()).cleanup(olderThanMs);
  }

  async *list(prefix: string, options?: ListOptions): AsyncIterable<BackendEntry> {
    yield* (await this.real()).list(prefix, options);
  }
}
