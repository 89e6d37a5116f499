import { Worker } from 'node:worker_threads';
import { TurnBatch } from '../lib/turnBatch.ts';
import {
  errorOf,
  readAhead,
  unpackWalkPage,
  type FsWork,
  type PageOfWalk,
  type SmallFile,
  type SmallFileWritten,
  type WalkPage,
} from './fsWork.ts';
import type { Reply, Request, WalkReply, WriteOutcome } from './fsWorker.ts';

/**
 * The small file system work in pure Node, for where the native module is not built (or
 * `YUNJI_NATIVE=off`): the same steps, results, order and errors as native/fs-work/fs_work.cc, done
 * with synchronous calls on one worker thread (`fsWorker.ts`), started on first use. The writes of
 * one event-loop turn go over in one message, and each page of a walk comes back in one
 * (docs/DECISIONS.md).
 */
export const portableFs: FsWork = { writeSmallFile, walkDirectory };

/** The worker, and the answers it owes by request id. */
let worker: Worker | undefined;
const waiting = new Map<number, { resolve: (reply: Reply) => void; reject: (err: Error) => void }>();
let lastId = 0;

/**
 * The worker's script: its compiled twin where this module is compiled, else the TypeScript source
 * through tsx, registered in the worker itself (Node 20 does not pass a loader on to workers).
 */
function startWorker(): Worker {
  const compiled = import.meta.url.endsWith('.js');
  const script = new URL(compiled ? './fsWorker.js' : './fsWorker.ts', import.meta.url);
  const started = compiled
    ? new Worker(script)
    : new Worker(
        `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((tsx) => { tsx.register(); return import(${JSON.stringify(script.href)}); })`,
        { eval: true },
      );
  started.on('message', (reply: Reply) => {
    const to = waiting.get(reply.id);
    waiting.delete(reply.id);
    if (waiting.size === 0) started.unref();
    to?.resolve(reply);
  });
  const fail = (err: Error) => {
    if (worker === started) worker = undefined;
    for (const to of waiting.values()) to.reject(err);
    waiting.clear();
  };
  started.on('error', fail);
  started.on('exit', (code) => fail(new Error(`the file work thread stopped (exit code ${code})`)));
  started.unref();
  return started;
}

/** Sends `request` (moving `transfer` over) and waits for its answer; the worker keeps the process up only while it owes one. */
function ask(request: Request, transfer: ArrayBuffer[] = []): Promise<Reply> {
  worker ??= startWorker();
  const to = worker;
  return new Promise((resolve, reject) => {
    if (waiting.size === 0) to.ref();
    waiting.set(request.id, { resolve, reject });
    to.postMessage(request, transfer);
  });
}

/** A message that needs no answer (a walk's stop). */
function tell(request: Request): void {
  worker?.postMessage(request);
}

/** The writes of one turn of the event loop go over in one message. */
const writes = new TurnBatch<SmallFile, WriteOutcome>(
  async (files) => {
    // Each file's bytes in a buffer of their own, moved rather than copied: a view's whole buffer
    // (a pooled or socket-sized one) would be cloned with it.
    const own = files.map((file) => (file.bytes ? { ...file, bytes: new Uint8Array(file.bytes) } : file));
    const transfer = own.flatMap((file) => (file.bytes ? [file.bytes.buffer as ArrayBuffer] : []));
    const reply = (await ask({ op: 'write', id: ++lastId, files: own }, transfer)) as { writes: WriteOutcome[] };
    return reply.writes;
  },
  { max: Number.MAX_SAFE_INTEGER },
);

async function writeSmallFile(file: SmallFile): Promise<SmallFileWritten> {
  const outcome = await writes.submit(file);
  if (!outcome.ok) throw errorOf(outcome.error);
  return outcome.value;
}

function walkDirectory(dir: string, key: string, skip: string, emptyDirs: boolean): AsyncGenerator<WalkPage> {
  const id = ++lastId;
  let started = false;
  const next = async (): Promise<PageOfWalk> => {
    const first = !started;
    started = true;
    const reply = await ask(first ? { op: 'walk', id, dir, key, skip, emptyDirs } : { op: 'next', id });
    if ('failed' in reply) throw errorOf(reply.failed);
    return unpackWalkPage(reply as WalkReply);
  };
  // Left before its end (a cancelled sync): the worker drops the walk.
  return readAhead(next, () => tell({ op: 'stop', id }));
}
