import type { FileHandle } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';
import { sendFileToSocket } from '../spaces/fsThreads.ts';
import { plainSocketFd } from './plainSocket.ts';

/** Bytes read from the file per turn (and the most either of the two buffers holds). */
const CHUNK = 1024 * 1024;
/** Bytes one sendfile hand-off sends at most, so downloads take turns on the thread pool. */
const SENDFILE_PIECE = 8 * CHUNK;
/** Longest pause between hand-offs while a client is not reading. */
const STALLED_CLIENT_WAIT_MS = 200;

/**
 * Sends `length` bytes of `file` from `start` as the reply's body (status and headers as set on the
 * reply), and closes the file. The first megabyte goes through the response as usual (which sends
 * the headers); on a plain TCP connection the rest goes from the file to the socket by sendfile(2),
 * which costs the server a fraction of the CPU of reading the bytes into buffers and writing them
 * out again (docs/BENCHMARKS.md). Elsewhere (TLS, or no descriptor) two buffers take turns: one is
 * read into while the other is being written, and each is read into again only once its write has
 * completed. A stream would take a fresh buffer for every chunk instead, and a gigabyte of fresh
 * buffers is external memory that V8 answers with a full garbage collection every 64 MB: measured,
 * that was three quarters of the server's CPU time on a 1 GiB download.
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
  const end = start + length;
  const closed = new Promise<void>((resolve) => res.once('close', resolve));
  if (length <= CHUNK || plainSocketFd(res.socket) === undefined) {
    await writeThroughBuffers(res, file, start, end, closed);
    return;
  }
  await writeThroughBuffers(res, file, start, start + CHUNK, closed);
  // Only once everything written through the response has reached the socket may bytes go to the
  // socket beside it; otherwise (never seen) the rest goes the same way as the first megabyte.
  if (res.socket && res.socket.writableLength > 0) await writeThroughBuffers(res, file, start + CHUNK, end, closed);
  else await writeBySendfile(res, file, start + CHUNK, end, closed);
}

/** Writes `[position, end)` of the file through the response. */
async function writeThroughBuffers(res: ServerResponse, file: FileHandle, position: number, end: number, closed: Promise<void>): Promise<void> {
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

/** Sends `[position, end)` of the file to the response's socket in pieces, waiting longer each time a client does not read. */
async function writeBySendfile(res: ServerResponse, file: FileHandle, position: number, end: number, closed: Promise<void>): Promise<void> {
  let wait = 0;
  while (position < end) {
    const fd = res.destroyed ? undefined : plainSocketFd(res.socket);
    if (fd === undefined) throw new Error('the client went away');
    const { sent, ended } = await sendFileToSocket(fd, file.fd, position, Math.min(SENDFILE_PIECE, end - position));
    position += sent;
    if (ended && position < end) throw new Error(`the file ended ${end - position} bytes short of its recorded size`);
    if (sent > 0) {
      wait = 0;
      continue;
    }
    wait = Math.min(STALLED_CLIENT_WAIT_MS, wait * 2 || 5);
    await Promise.race([new Promise((resolve) => setTimeout(resolve, wait)), closed]);
  }
}
