import type { Readable, Writable } from 'node:stream';

/**
 * Pipes `source` into `dest` and settles when `dest` has finished and closed, or on the first
 * failure of either (both are destroyed then). It does what `stream.pipeline` does for two streams
 * without its per-call AbortController, whose abort at the end builds a DOMException with a stack
 * trace, a cost a small upload notices (docs/BENCHMARKS.md, "Storage data plane").
 */
export function pump(source: Readable, dest: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      source.unpipe(dest);
      source.destroy();
      dest.destroy();
      reject(err);
    };
    // Either may have failed before we got here, its 'error' already emitted.
    const early =
      source.errored ?? dest.errored ?? (source.destroyed && !source.readableEnded ? new Error('the source closed before its end') : null);
    if (early) return fail(early);
    source.once('error', fail);
    dest.once('error', fail);
    source.once('close', () => {
      if (!source.readableEnded) fail(new Error('the source closed before its end'));
    });
    dest.once('close', () => {
      if (settled) return;
      if (!dest.writableFinished) return fail(new Error('the destination closed before it finished'));
      settled = true;
      resolve();
    });
    source.pipe(dest);
  });
}

/**
 * Reads `source` while it stays within `limit` bytes: its whole content if it ended by then;
 * otherwise undefined, with what was read put back at the front of the stream, which is paused.
 * Rejects if the source fails or closes before its end.
 */
export function readSmall(source: Readable, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const early = source.errored ?? (source.destroyed && !source.readableEnded ? new Error('the upload ended before its last byte') : null);
    if (early) return reject(early);
    const chunks: Buffer[] = [];
    let size = 0;
    const done = () => {
      source.off('data', onData);
      source.off('end', onEnd);
      source.off('error', onError);
      source.off('close', onClose);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size <= limit) return;
      done();
      source.pause();
      source.unshift(Buffer.concat(chunks, size));
      resolve(undefined);
    };
    const onEnd = () => {
      done();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (err: Error) => {
      done();
      reject(err);
    };
    const onClose = () => {
      done();
      reject(new Error('the upload ended before its last byte'));
    };
    source.on('data', onData);
    source.once('end', onEnd);
    source.once('error', onError);
    source.once('close', onClose);
  });
}
