import { Worker } from 'node:worker_threads';

/**
 * File system work off the main thread, in one hand-off per operation: a worker thread writes a
 * small file whole (opens the partial file, writes it or copies another file into it, closes it and
 * moves it to its target), or lists a directory with the size and time of each file, with
 * synchronous calls. The same steps as asynchronous `fs` calls cost the main thread a thread-pool
 * trip each (65–90 µs apiece on the 2-core VM of docs/BENCHMARKS.md, against about 20 µs for one
 * message to a worker); made synchronously on the main thread they would stall every request
 * whenever the disk is slow, and a sync's two walks could not overlap.
 */
export interface SmallFile {
  /** A new name in the same file system as `target`, created exclusively. */
  partial: string;
  /** Where the file ends up; the same as `partial` to write in place. */
  target: string;
  /** The content, or the path of a file to copy it from (small: the copy holds up its thread). */
  bytes?: Uint8Array;
  copyOf?: string;
  /** Modification time to give the file (epoch ms). */
  mtimeMs?: number;
}

/** Whether a file was at the target before (and was replaced; not told for copies), and the size written. */
export interface SmallFileWritten {
  replaced: boolean;
  size: number;
}

/** A directory's entry: a file with its size and time, or a directory. */
export interface ListedEntry {
  name: string;
  dir: boolean;
  size: number;
  mtimeMs: number;
  /** The name's bytes in hex when they are not UTF-8 (`name` is then not the real name). */
  badName?: string;
}

/** A directory's files and directories in byte order of their keys (a directory's name sorts as `name/`). */
export interface Listing {
  entries: ListedEntry[];
  /** The directory's own time, when it holds nothing listed. */
  mtimeMs?: number;
}

// Plain CommonJS evaluated in the worker, so it runs the same from TypeScript sources and from the build.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const path = require('node:path');
// Byte order of UTF-8 keys, on the strings: UTF-16 order but for surrogates, which sort after U+E000–U+FFFF (as compareUtf8 in src/sync/tree.ts).
function compareKeys(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i), y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && x <= 0xdfff) x += 0x2000; else if (x >= 0xe000) x -= 0x800;
    if (y >= 0xd800 && y <= 0xdfff) y += 0x2000; else if (y >= 0xe000) y -= 0x800;
    return x - y;
  }
  return a.length - b.length;
}
// A directory's files and folders in byte order of their keys (a folder's key ends in '/').
function namesOf(dir, skip) {
  const found = [];
  let undecoded = false;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const file = e.isFile();
    if (!file && !e.isDirectory()) continue;
    if (!file && e.name === skip) continue;
    // Bytes that are not UTF-8 come out as U+FFFD: such a directory is read again as bytes.
    if (e.name.includes('\uFFFD')) undecoded = true;
    found.push({ name: e.name, file, key: file ? e.name : e.name + '/' });
  }
  if (undecoded) return rawNamesOf(dir, skip);
  found.sort((a, b) => compareKeys(a.key, b.key));
  return found;
}
function rawNamesOf(dir, skip) {
  const found = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true, encoding: 'buffer' })) {
    const file = e.isFile();
    if (!file && !e.isDirectory()) continue;
    const name = e.name.toString('utf8');
    if (!file && name === skip) continue;
    const badName = Buffer.from(name).equals(e.name) ? undefined : e.name.toString('hex');
    found.push({ name, file, badName, order: Buffer.from(file ? name : name + '/') });
  }
  found.sort((a, b) => Buffer.compare(a.order, b.order));
  return found;
}
// Packed as one string and three arrays: copying them to the main thread costs a small part of
// what as many objects would, there and here.
function list({ id, dir, skip }) {
  try {
    const found = namesOf(dir, skip);
    const kinds = new Uint8Array(found.length), sizes = new Float64Array(found.length), mtimes = new Float64Array(found.length);
    const names = [];
    const badNames = {};
    const prefix = dir.endsWith('/') ? dir : dir + '/';
    for (const f of found) {
      const i = names.length;
      if (f.badName !== undefined || !f.file) {
        if (f.badName !== undefined) badNames[i] = f.badName;
        kinds[i] = f.file ? 0 : 1;
        names.push(f.name);
        continue;
      }
      // A file gone or turned into something else since readdir is left out.
      let st;
      try { st = fs.statSync(prefix + f.name, { throwIfNoEntry: false }); } catch {}
      if (!st || !st.isFile()) continue;
      names.push(f.name);
      sizes[i] = st.size;
      mtimes[i] = st.mtimeMs;
    }
    const listing = { count: names.length, names: names.join('\0'), kinds, sizes, mtimes, badNames };
    if (names.length === 0) { const st = fs.statSync(dir, { throwIfNoEntry: false }); if (st) listing.mtimeMs = st.mtimeMs; }
    return { id, listing };
  } catch (err) {
    return { id, error: { message: err.message, code: err.code } };
  }
}
function write({ id, partial, target, bytes, copyOf, mtimeMs }) {
  let fd;
  let created = false;
  let size;
  try {
    if (copyOf !== undefined) {
      fs.copyFileSync(copyOf, partial, fs.constants.COPYFILE_EXCL);
      created = true;
      if (mtimeMs !== undefined) fs.utimesSync(partial, Date.now() / 1000, mtimeMs / 1000);
      size = fs.statSync(partial).size;
    } else {
      fd = fs.openSync(partial, 'wx');
      created = true;
      for (let done = 0; done < bytes.length; ) done += fs.writeSync(fd, bytes, done);
      if (mtimeMs !== undefined) fs.futimesSync(fd, Date.now() / 1000, mtimeMs / 1000);
      fs.closeSync(fd);
      fd = undefined;
      size = bytes.length;
    }
    let replaced = false;
    // A copy (a sync's) only needs to land whole; one rename is one metadata change fewer than link and unlink.
    if (copyOf !== undefined) fs.renameSync(partial, target);
    else if (partial !== target) {
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
    return { id, replaced, size };
  } catch (err) {
    if (fd !== undefined) try { fs.closeSync(fd); } catch {}
    if (created) try { fs.unlinkSync(partial); } catch {}
    return { id, error: { message: err.message, code: err.code } };
  }
}
parentPort.on('message', (batch) => parentPort.postMessage(batch.map((r) => (r.dir !== undefined ? list(r) : write(r)))));
`;

interface Pending {
  resolve: (value: Reply) => void;
  reject: (err: Error) => void;
}

type Request = { id: number } & (SmallFile | { dir: string; skip: string });

/** A listing as a thread sends it: entry i is `names.split('\0')[i]`, `kinds[i]` (0 file, 1 directory), `sizes[i]`, `mtimes[i]`. */
interface PackedListing {
  count: number;
  names: string;
  kinds: Uint8Array;
  sizes: Float64Array;
  mtimes: Float64Array;
  badNames: Record<number, string>;
  mtimeMs?: number;
}

interface Reply {
  id: number;
  replaced?: boolean;
  size?: number;
  listing?: PackedListing;
  error?: { message: string; code?: string };
}

/** Two threads, so one write held up by the disk does not hold up every other, and a sync's two walks overlap. */
const THREADS = 2;

/**
 * A thread's young generation, in MiB. V8 would grow it as for the main thread (to 32 MiB and
 * more during a walk) and keep it; what a thread allocates (one directory's listing, one small
 * file's bytes) dies young at any size. At 4 a sync's server ended 12 MiB smaller (148–151 MiB
 * against 160–163 after eleven syncs of 10,000 files, docs/DECISIONS.md) and no slower.
 */
const THREAD_YOUNG_GENERATION_MB = 4;

class FsThread {
  private readonly worker: Worker;
  readonly pending = new Map<number, Pending>();
  dead = false;

  constructor() {
    this.worker = new Worker(WORKER_SOURCE, { eval: true, resourceLimits: { maxYoungGenerationSizeMb: THREAD_YOUNG_GENERATION_MB } });
    this.worker.unref();
    this.worker.on('message', (replies: Reply[]) => replies.forEach((r) => this.settle(r)));
    // A thread that fails or exits takes its writes with it: they fail, and the next write starts a new thread.
    this.worker.on('error', (err) => this.die(err));
    this.worker.on('exit', (code) => this.die(new Error(`the file system thread exited (code ${code})`)));
  }

  send(batch: { request: Request; waiting: Pending }[]): void {
    if (this.dead) {
      const err = new Error('the file system thread has stopped');
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
    else waiting.resolve(reply);
  }

  private die(err: Error): void {
    if (this.dead) return;
    this.dead = true;
    for (const waiting of this.pending.values()) waiting.reject(err);
    this.pending.clear();
  }
}

const threads: FsThread[] = [];
let queued: { request: Request; waiting: Pending }[] = [];
let nextId = 1;

/**
 * The work of one turn of the event loop goes to a thread as one message (or one per idle thread):
 * waking a sleeping thread is most of a hand-off's cost on this kind of VM, and concurrent uploads
 * finish in the same turn.
 */
function flush(): void {
  const batch = queued;
  queued = [];
  for (let i = threads.length - 1; i >= 0; i--) if (threads[i]!.dead) threads.splice(i, 1);
  while (threads.length < THREADS) threads.push(new FsThread());
  // Shared among the idle threads, so a sync's two walks (asking in the same turn) proceed at once.
  const idle = threads.filter((t) => t.pending.size === 0);
  if (idle.length > 1 && batch.length > 1) {
    const share = Math.ceil(batch.length / idle.length);
    idle.forEach((t, i) => i * share < batch.length && t.send(batch.slice(i * share, (i + 1) * share)));
    return;
  }
  threads.reduce((a, b) => (b.pending.size < a.pending.size ? b : a)).send(batch);
}

function submit(request: Request): Promise<Reply> {
  return new Promise((resolve, reject) => {
    if (queued.length === 0) setImmediate(flush);
    queued.push({ request, waiting: { resolve, reject } });
  });
}

/** Writes `file` whole (its `bytes`, or a copy of `copyOf`); rejects with the file system's error (its `code` kept) and leaves no partial file. */
export async function writeSmallFile(file: SmallFile): Promise<SmallFileWritten> {
  const reply = await submit({ id: nextId++, ...file });
  return { replaced: reply.replaced === true, size: reply.size ?? 0 };
}

/** Lists `dir` (leaving out a directory named `skip`); rejects with the file system's error (its `code` kept). */
export async function listDirectory(dir: string, skip: string): Promise<Listing> {
  const packed = (await submit({ id: nextId++, dir, skip })).listing!;
  const names = packed.count === 0 ? [] : packed.names.split('\0');
  const entries = names.map((name, i): ListedEntry => {
    const entry: ListedEntry = { name, dir: packed.kinds[i] === 1, size: packed.sizes[i]!, mtimeMs: packed.mtimes[i]! };
    const badName = packed.badNames[i];
    if (badName !== undefined) entry.badName = badName;
    return entry;
  });
  return packed.mtimeMs === undefined ? { entries } : { entries, mtimeMs: packed.mtimeMs };
}
