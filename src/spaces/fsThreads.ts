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

/** Entries of a walk a thread sends at a time. */
const WALK_PAGE = 1000;

/** Kinds of a walk's entries (see the worker's walkPage). */
export const WALK_FILE = 0;
export const WALK_EMPTY_DIR = 1;
export const WALK_BAD_NAME = 2;
export const WALK_ERROR = 3;

/** Entries of a walk in byte order of their keys: entry i is `keys[i]`, `kinds[i]`, `sizes[i]`, `mtimes[i]`, `notes[i]`. */
export interface WalkPage {
  keys: string[];
  kinds: Uint8Array;
  sizes: Float64Array;
  mtimes: Float64Array;
  /** A bad name's bytes in hex; an error as JSON `{message, code}`. */
  notes: Record<number, string>;
}

interface PackedPage {
  count: number;
  keys: string;
  kinds: Uint8Array;
  sizes: Float64Array;
  mtimes: Float64Array;
  notes: Record<number, string>;
  done: boolean;
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
    if (e.name.includes('\\uFFFD')) undecoded = true;
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
// A directory's entries in key order, each file with its size and time; a file gone or turned
// into something else since readdir is left out.
function listed(dir, skip) {
  const out = [];
  const prefix = dir.endsWith('/') ? dir : dir + '/';
  for (const f of namesOf(dir, skip)) {
    if (f.badName !== undefined || !f.file) { out.push(f); continue; }
    let st;
    try { st = fs.statSync(prefix + f.name, { throwIfNoEntry: false }); } catch {}
    if (!st || !st.isFile()) continue;
    f.size = st.size;
    f.mtimeMs = st.mtimeMs;
    out.push(f);
  }
  return out;
}
const missing = (err) => err.code === 'ENOENT' || err.code === 'ENOTDIR';
// Walks in progress, each resumed a page at a time: { skip, emptyDirs, stack of { dir, key, items, i } }.
const walks = new Map();
const PAGE = ${WALK_PAGE};
function walkStart({ id, walk, dir, key, skip, emptyDirs }) {
  let items;
  try {
    items = listed(dir, skip);
  } catch (err) {
    if (!missing(err)) return { id, error: { message: err.message, code: err.code } };
    items = [];
  }
  walks.set(walk, { skip, emptyDirs, stack: [{ dir, key, items, i: 0 }] });
  return walkPage(id, walk);
}
// The next entries in key order, depth first, packed as one string and three arrays: copying
// them to the main thread costs a small part of what as many objects would, there and here.
// Kinds: 0 file, 1 empty folder, 2 a name that is not UTF-8 (its bytes in hex in notes), 3 a
// folder that cannot be listed (the error in notes; the walk ends there).
function walkPage(id, walk) {
  const w = walks.get(walk);
  if (!w) return { id, error: { message: 'the walk is no longer known to its thread' } };
  const keys = [];
  const kinds = new Uint8Array(PAGE), sizes = new Float64Array(PAGE), mtimes = new Float64Array(PAGE);
  const notes = {};
  while (keys.length < PAGE && w.stack.length > 0) {
    const top = w.stack[w.stack.length - 1];
    if (top.i >= top.items.length) { w.stack.pop(); continue; }
    const f = top.items[top.i++];
    const key = top.key ? top.key + '/' + f.name : f.name;
    const n = keys.length;
    if (f.badName !== undefined) { keys.push(key); kinds[n] = 2; notes[n] = f.badName; continue; }
    if (f.file) { keys.push(key); sizes[n] = f.size; mtimes[n] = f.mtimeMs; continue; }
    const sub = path.join(top.dir, f.name);
    let items;
    try {
      items = listed(sub, w.skip);
    } catch (err) {
      if (missing(err)) continue;
      keys.push(key); kinds[n] = 3; notes[n] = JSON.stringify({ message: err.message, code: err.code });
      w.stack.length = 0;
      break;
    }
    if (items.length > 0) { w.stack.push({ dir: sub, key, items, i: 0 }); continue; }
    if (!w.emptyDirs) continue;
    // With its trailing slash the key sorts where the folder's files would.
    const st = fs.statSync(sub, { throwIfNoEntry: false });
    if (st) { keys.push(key + '/'); kinds[n] = 1; mtimes[n] = st.mtimeMs; }
  }
  const done = w.stack.length === 0;
  if (done) walks.delete(walk);
  return { id, page: { count: keys.length, keys: keys.join('\\0'), kinds, sizes, mtimes, notes, done } };
}
function handle(r) {
  if (r.op === 'walk') return walkStart(r);
  if (r.op === 'next') return walkPage(r.id, r.walk);
  if (r.op === 'stop') { walks.delete(r.walk); return { id: r.id }; }
  return write(r);
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
parentPort.on('message', (batch) => parentPort.postMessage(batch.map(handle)));
`;

interface Pending {
  resolve: (value: Reply) => void;
  reject: (err: Error) => void;
}

type Request = { id: number } & (
  | SmallFile
  | { op: 'walk'; walk: number; dir: string; key: string; skip: string; emptyDirs: boolean }
  | { op: 'next'; walk: number }
  | { op: 'stop'; walk: number }
);

interface Reply {
  id: number;
  replaced?: boolean;
  size?: number;
  page?: PackedPage;
  /** The thread that answered (a walk goes on on the thread it started on). */
  thread?: FsThread;
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
    else waiting.resolve(Object.assign(reply, { thread: this }));
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

/** A request for the thread a walk is on, sent at once. */
function submitTo(thread: FsThread, request: Request): Promise<Reply> {
  return new Promise((resolve, reject) => thread.send([{ request, waiting: { resolve, reject } }]));
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

/**
 * Walks `dir` depth first (leaving out directories named `skip`, following no symlinks), in byte
 * order of the keys (`key` joined with the relative path). The walk runs on one file system
 * thread a page ahead of its reader. A missing `dir` is an empty walk; a `dir` that cannot be
 * listed rejects with the file system's error (its `code` kept); a folder further down that
 * cannot be listed is a WALK_ERROR entry, the walk's last.
 */
export async function* walkDirectory(dir: string, key: string, skip: string, emptyDirs: boolean): AsyncGenerator<WalkPage> {
  const walk = nextId++;
  let reply = await submit({ id: nextId++, op: 'walk', walk, dir, key, skip, emptyDirs });
  const thread = reply.thread!;
  let done = false;
  try {
    for (;;) {
      const page = reply.page!;
      done = page.done;
      const next = done ? undefined : submitTo(thread, { id: nextId++, op: 'next', walk });
      next?.catch(() => undefined); // an error is thrown where the page is reached
      if (page.count > 0) yield { keys: page.keys.split('\0'), kinds: page.kinds, sizes: page.sizes, mtimes: page.mtimes, notes: page.notes };
      if (!next) return;
      reply = await next;
    }
  } finally {
    // Left before its end (a cancelled sync): the thread forgets it.
    if (!done) submitTo(thread, { id: nextId++, op: 'stop', walk }).catch(() => undefined);
  }
}
