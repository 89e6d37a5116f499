import type { FileHandle } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';

/** Bytes read from the file per turn (and the most either of the two buffers holds). */
const CHUNK = 1024 * 1024;

/**
 * Sends `length` bytes of `file` from `start` as the reply's body (status and headers as set on the
 * reply), and closes the file. Two buffers take turns: one is read into while the other is being
 * written, and each is read into again only once its write has completed. A stream would take a
 * fresh buffer for every chunk, and a gigabyte of fresh buffers is external memory that V8 answers
 * with full garbage collections (docs/DECISIONS.md).
 */
export function sendFileBody(reply: FastifyReply, file: FileHandle, start: number, length: number): FastifyReply {
  reply.hijack();
  const res = reply.raw;
  // The app's onSend hook does this for other replies; a hijacked one skips hooks.
  if (reply.server.draining) reply.header('connection', 'close');
  for (const [name, value] of Object.entries(reply.getHeaders())) if (value !== undefined) res.setHeader(name, value);
  res.writeHead(reply.statusCode);
  const body = reply.request.method === 'HEAD' ? Promise.resolve() : writeFileRange(res, file, start, length);
  void body
    .then(
      () => res.end(),
      (err: unknown) => {
        // Past the headers, the only way left to tell the client is to cut the connection short.
        if (!res.destroyed) reply.log.warn({ err }, 'download cut short');
        res.destroy();
      },
    )
    .finally(() => file.close().catch(() => undefined));
  return reply;
}

async function writeFileRange(res: ServerResponse, file: FileHandle, start: number, length: number): Promise<void> {
  const closed = new Promise<void>((resolve) => res.once('close', resolve));
  await writeThroughBuffers(res, file, start, start + length, closed);
}

/** Writes `[position, end)` of the file through the response. */
async function writeThroughBuffers(
  res: ServerResponse,
  file: FileHandle,
  position: number,
  end: number,
  closed: Promise<void>,
): Promise<void> {
  const size = Math.min(CHUNK, end - position);
  const buffers = end - position > CHUNK ? [Buffer.allocUnsafeSlow(size), Buffer.allocUnsafeSlow(size)] : [Buffer.allocUnsafeSlow(size)];
  const writes: Promise<void>[] = [];
  let failure: Error | undefined;
  // A write whose response is destroyed may never call back: the close settles it too (nothing is
  // read into its buffer after that).
  const written = (chunk: Buffer) =>
    new Promise<void>((resolve) =>
      res.write(chunk, (err) => {
        if (err) failure ??= err;
        resolve();
      }),
    );
  const write = (chunk: Buffer) => Promise.race([written(chunk), closed]);
  for (let turn = 0; position < end; turn = (turn + 1) % buffers.length) {
    await writes[turn];
    if (failure) throw failure;
    if (res.destroyed) throw new Error('the client went away');
    const buffer = buffers[turn]!;
    const { bytesRead } = await file.read(buffer, 0, Math.min(buffer.length, end - position), position);
    if (bytesRead === 0) throw new Error(`the file ended ${end - position} bytes short of its recorded size`);
    position += bytesRead;
    writes[turn] = write(buffer.subarray(0, bytesRead));
  }
  await Promise.all(writes);
  if (failure) throw failure;
}
