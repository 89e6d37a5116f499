import { fdatasync, WriteStream, type WriteStream as WriteStreamType } from 'node:fs';

/** Written bytes after which the disk is asked to take them, and again after each further step. */
export const WRITE_BEHIND_STEP = 16 * 1024 * 1024;

/** `fs.WriteStream` as the constructor it is at run time (@types/node declares it without one). */
const FileStream = WriteStream as unknown as new (path: string, options: { flags: string; highWaterMark: number }) => WriteStreamType;

/**
 * A file stream that hands what it has written to the disk while the rest still arrives: each
 * time another step has been written it starts an `fdatasync` on a thread-pool thread (one at a
 * time; writes go on meanwhile), and it finishes only once the last one has returned.
 *
 * Without it a large upload stays in the page cache whole, and the disk writes it only afterwards
 * in one burst, after the upload was acknowledged (figures: docs/DECISIONS.md, "Storage surface").
 * It also keeps a busy server from filling memory with dirty pages. Files smaller than one step
 * never wait for the disk. The end of the file is not synced: a finished file survives a process
 * crash, not a power loss, as small files and SQLite's `synchronous=NORMAL` do.
 */
export class WriteBehindStream extends FileStream {
  /** Flushes started so far. */
  flushes = 0;
  private flushedTo = 0;
  private flushing: Promise<void> | undefined;

  override _write(chunk: Buffer, encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    super._write(chunk, encoding, (err) => {
      if (!err) this.writeBehind();
      callback(err);
    });
  }

  override _writev(chunks: { chunk: Buffer; encoding: BufferEncoding }[], callback: (error?: Error | null) => void): void {
    super._writev!(chunks, (err) => {
      if (!err) this.writeBehind();
      callback(err);
    });
  }

  override _final(callback: (error?: Error | null) => void): void {
    void this.settled().then(() => callback());
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // The descriptor stays open until the flush on it has returned.
    void this.settled().then(() => super._destroy(error, callback));
  }

  private writeBehind(): void {
    const fd = (this as unknown as { fd: number | null }).fd;
    if (this.flushing || typeof fd !== 'number' || this.bytesWritten - this.flushedTo < WRITE_BEHIND_STEP) return;
    this.flushedTo = this.bytesWritten;
    this.flushes++;
    // A failed flush loses nothing: the bytes stay in the page cache for the kernel's own write-back.
    this.flushing = new Promise((resolve) => fdatasync(fd, () => resolve()));
    void this.flushing.then(() => (this.flushing = undefined));
  }

  private settled(): Promise<void> {
    return this.flushing ?? Promise.resolve();
  }
}
