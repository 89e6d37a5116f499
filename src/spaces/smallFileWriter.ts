import { Worker } from 'node:worker_threads';

/**
 * Small files written whole, off the main thread, in one hand-off each: a worker thread opens the
 * partial file, writes it, closes it and moves it to its target with synchronous calls. The
 * same four steps as asynchronous `fs` calls cost the main thread a thread-pool trip each (65–90 µs
 * apiece on the 2-core VM of docs/BENCHMARKS.md, against about 20 µs for one message to a worker);
 * made synchronously on the main thread they would stall every request whenever the disk is slow.
 */
export interface SmallFile {
  /** A new name in the same file system as `target`, created exclusively. */
  partial: string;
  /** Where the file ends up; the same as `partial` to write in place. */
  target: string;
  bytes: Uint8Array;
  /** Modification time to give the file (epoch ms). */
  mtimeMs?: number;
}

/** Whether a file was at the target before (and was replaced). */
export interface SmallFileWritten {
  replaced: boolean;
}

// Plain CommonJS evaluated in the worker, so it runs the same from TypeScript sources and from the build.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
function write({ id, partial, target, bytes, mtimeMs }) {
  let fd;
  let created = false;
  try {
    fd = fs.openSync(partial, 'wx');
    created = true;
    for (let done = 0; done < bytes.length; ) done += fs.writeSync(fd, bytes, done);
    if (mtimeMs !== undefined) fs.futimesSync(fd, Date.now() / 1000, mtimeMs / 1000);
    fs.closeSync(fd);
    fd = undefined;
    let replaced = false;
    if (partial !== target) {
      try {
        // A link is made only where no file is, so of two writers of one name exactly one hears it was new.
        fs.linkSync(partial, target);
        fs.unlinkSync(partial);
      } catch (err) {
        if (err.code !== 'EEXIST' && err.code !== 'EPERM' && err.code !== 'ENOTSUP') throw err;
        // Taken (or no hard links here): replace it, which also makes it new again.
        replaced = err.code === 'EEXIST' || fs.statSync(target, { throwIfNoEntry: false }) !== undefined;
        fs.renameSync(partial, target);
      }
    }
    return { id, replaced };
  } catch (err) {
    if (fd !== undefined) try { fs.closeSync(fd); } catch {}
    if (created) try { fs.unlinkSync(partial); } catch {}
    return { id, error: { message: err.message, code: err.code } };
  }
}
parentPort.on('message', (batch) => parentPort.postMessage(batch.map(write)));
`;

interface Pending {
  resolve: (value: SmallFileWritten) => void;
  reject: (err: Error) => void;
}

interface Request extends SmallFile {
  id: number;
}

interface Reply {
  id: number;
  replaced?: boolean;
  error?: { message: string; code?: string };
}

/** Two threads, so one write held up by the disk does not hold up every other. */
const THREADS = 2;

class WriterThread {
  private readonly worker: Worker;
  readonly pending = new Map<number, Pending>();
  dead = false;

  constructor() {
    this.worker = new Worker(WORKER_SOURCE, { eval: true });
    this.worker.unref();
    this.worker.on('message', (replies: Reply[]) => replies.forEach((r) => this.settle(r)));
    // A thread that fails or exits takes its writes with it: they fail, and the next write starts a new thread.
    this.worker.on('error', (err) => this.die(err));
    this.worker.on('exit', (code) => this.die(new Error(`the file writer thread exited (code ${code})`)));
  }

  send(batch: { request: Request; waiting: Pending }[]): void {
    if (this.dead) {
      const err = new Error('the file writer thread has stopped');
      for (const { waiting } of batch) waiting.reject(err);
      return;
    }
    // Held only while writes are in flight, so an idle writer never keeps the process alive.
    if (this.pending.size === 0) this.worker.ref();
    for (const { request, waiting } of batch) this.pending.set(request.id, waiting);
    this.worker.postMessage(batch.map((b) => b.request));
  }

  private settle(reply: Reply): void {
    const waiting = this.pending.get(reply.id);
    if (!waiting) return;
    this.pending.delete(reply.id);
    if (this.pending.size === 0) this.worker.unref();
    if (reply.error) waiting.reject(Object.assign(new Error(reply.error.message), { code: reply.error.code }));
    else waiting.resolve({ replaced: reply.replaced === true });
  }

  private die(err: Error): void {
    if (this.dead) return;
    this.dead = true;
    for (const waiting of this.pending.values()) waiting.reject(err);
    this.pending.clear();
  }
}

const threads: WriterThread[] = [];
let queued: { request: Request; waiting: Pending }[] = [];
let nextId = 1;

/**
 * Writes of one turn of the event loop go to a thread as one message: waking a sleeping thread is
 * most of a hand-off's cost on this kind of VM, and concurrent uploads finish in the same turn.
 */
function flush(): void {
  const batch = queued;
  queued = [];
  for (let i = threads.length - 1; i >= 0; i--) if (threads[i]!.dead) threads.splice(i, 1);
  while (threads.length < THREADS) threads.push(new WriterThread());
  threads.reduce((a, b) => (b.pending.size < a.pending.size ? b : a)).send(batch);
}

/** Writes `file` whole; rejects with the file system's error (its `code` kept) and leaves no partial file. */
export function writeSmallFile(file: SmallFile): Promise<SmallFileWritten> {
  return new Promise((resolve, reject) => {
    if (queued.length === 0) setImmediate(flush);
    queued.push({ request: { id: nextId++, ...file }, waiting: { resolve, reject } });
  });
}
