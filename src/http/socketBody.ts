import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { receiveFromSocket } from '../spaces/fsThreads.ts';
import { plainSocketFd, type PlainSocket } from './plainSocket.ts';

/** Bodies with at least this many bytes still to come are taken from Node. */
const MIN_TAKEN = 8 * 1024 * 1024;
/** Bytes one hand-off reads at most. */
const PIECE = 1024 * 1024;
/** Longest pause between hand-offs while a client sends nothing. */
const STALLED_CLIENT_WAIT_MS = 200;
/** A client that has sent nothing for this long is taken to be gone. */
const IDLE_LIMIT_MS = 120_000;

/**
 * The rest of a large request body, read from its socket a megabyte at a time on the thread pool
 * (`receiveFromSocket`) instead of by Node, which reads 64 KiB at a time and passes each piece
 * through its HTTP parser and the request stream on the main thread: a 1 GiB upload then costs
 * the main thread 1.0–1.2 s instead of 1.5–1.6 (docs/DECISIONS.md). Undefined where the body
 * cannot be taken: no Content-Length (chunked), TLS, no descriptor, or less than 8 MiB to come.
 *
 * Node's parser is left waiting for bytes it never sees, so the connection cannot carry another
 * request: the caller's answer must close it. The socket's reading is stopped before the bytes
 * Node already has are taken from the request, so every byte is read once, by one reader; and
 * the handle's readStart is made a no-op, so that nothing in Node (a request resumed to drain it)
 * starts reading beside this reader. Nothing past Content-Length is read.
 */
export function takeBody(req: IncomingMessage): Readable | undefined {
  const lengthHeader = req.headers['content-length'];
  if (lengthHeader === undefined || req.headers['transfer-encoding'] !== undefined || req.complete || req.readableDidRead) return undefined;
  const length = Number(lengthHeader);
  const socket = req.socket as PlainSocket;
  const handle = socket._handle;
  if (!Number.isSafeInteger(length) || plainSocketFd(socket) === undefined || typeof handle?.readStop !== 'function') return undefined;
  // What Node has read of the body so far waits in the request, unread.
  if (length - req.readableLength < MIN_TAKEN) return undefined;
  if (handle.readStop() !== 0) return undefined;
  handle.readStart = () => 0;
  const start: Buffer[] = [];
  for (let chunk = req.read() as Buffer | null; chunk !== null; chunk = req.read() as Buffer | null) start.push(chunk);
  const taken = start.reduce((n, c) => n + c.length, 0);
  return new SocketBody(socket, start, length - taken);
}

class SocketBody extends Readable {
  private lastByteAt = Date.now();
  private wait = 0;

  constructor(
    private readonly socket: PlainSocket,
    private readonly start: Buffer[],
    private left: number,
  ) {
    super({ highWaterMark: PIECE });
  }

  override _read(): void {
    const first = this.start.shift();
    if (first) {
      this.push(first);
      return;
    }
    if (this.left === 0) {
      this.push(null);
      return;
    }
    const fd = plainSocketFd(this.socket);
    if (fd === undefined) {
      this.destroy(new Error('the upload ended before its last byte'));
      return;
    }
    const buffer = Buffer.allocUnsafeSlow(Math.min(PIECE, this.left));
    receiveFromSocket(fd, buffer).then(
      ({ received, ended }) => {
        if (this.destroyed) return;
        if (received > 0) {
          this.left -= received;
          this.lastByteAt = Date.now();
          this.wait = 0;
          this.push(buffer.subarray(0, received));
        } else if (ended) {
          this.destroy(new Error('the upload ended before its last byte'));
        } else if (Date.now() - this.lastByteAt > IDLE_LIMIT_MS) {
          this.destroy(new Error(`the client sent nothing for ${IDLE_LIMIT_MS / 1000} s`));
        } else {
          this.wait = Math.min(STALLED_CLIENT_WAIT_MS, this.wait * 2 || 5);
          setTimeout(() => this.destroyed || this._read(), this.wait);
        }
      },
      (err: Error) => this.destroy(err),
    );
  }
}
