import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { AppError } from '../../src/lib/errors.ts';
import type { Backend, BackendEntry } from '../../src/backends/backend.ts';
import { asClientError, BackendError } from '../../src/backends/backendError.ts';

/**
 * The contract every backend (src/backends/backend.ts) keeps, as its callers (the shard store, sync's
 * BackendTree, package import/export, asClientError) rely on it. One rule a line; callers give keys
 * as joinKey makes them (no empty segment, no leading or trailing '/'; a list prefix may end in '/').
 *
 * - put stores a Buffer or a stream whole (empty, small, past 1 MiB, past a multipart part) and answers its size.
 * - put over a key replaces it entirely; with `reportReplaced`, `replaced` tells whether a file was there (without, it is absent or true to fact).
 * - Concurrent puts to one key leave one of them, whole; a reader meanwhile gets one version, whole.
 * - A put whose stream fails or closes early rejects, and leaves the key as it was: nothing partial is listed, stat or read, nor left for cleanup.
 * - A scratch put (a temporary key, which may be written in place) stores the bytes as put does.
 * - get reads the whole file, or the inclusive range asked; a range's end past the last byte stops there, a range starting past it reads nothing.
 * - get (and rename's source) of a key that holds no file rejects with BackendError 'not_found'.
 * - stat answers a file's key, size and time; undefined for a missing key, a folder, or the root. Reading a folder fails.
 * - remove makes the key missing; removing a missing key succeeds.
 * - rename moves the bytes and the kept time to `to`, replacing it; `from` is then missing.
 * - list(prefix) yields every file at or under a key or folder (not `prefix` as a string prefix: 'p' is not 'pq'), in order of the keys' UTF-8 bytes, each once, past 1,000 entries.
 * - list never shows what is inside a `.yunji` folder below the prefix (a file of that name is listed); listing inside one shows its files (the shard store sweeps them).
 * - Keys are printable UTF-8: spaces, `+`, `%`, `?`, `#`, quotes and other scripts round-trip through every operation; keys that differ only in Unicode normalization are two keys.
 * - A key with a `.` or `..` segment or a NUL is refused with BackendError 'invalid_path' ("not a path inside"), which asClientError makes a 400.
 * - A backend may refuse another key it cannot store (the local one: `\`), only with BackendError 'invalid_path'.
 * - put with `mtimeMs` keeps that time (to the millisecond): stat gives it; list gives it or flags `approximateTime`.
 * - A file written without a time has its write's time, also once renamed (stores' clocks tick in seconds): the sweeper takes only shards older than a write's start.
 * - Local kinds: putFile stores a copy of a file (its time kept) as put does; localFile and openFile give the file a key names; a missing one is 'not_found'.
 * - describe() names the store without its secrets.
 * - Kinds with folders: makeDir makes an empty folder, which list shows (key ending in '/', `emptyDir`) only when asked.
 */

export interface BackendUnderTest {
  backend: Backend;
  cleanup(): Promise<void>;
  /** What `describe()` must never show (an S3 secret key). */
  secrets?: string[];
}

/** What a kind of backend has beyond the required methods; the suite checks the backend has exactly these. */
export interface BackendKind {
  /** putFile, localFile and openFile: a directory on this machine. */
  localFiles: boolean;
  /** makeDir, and empty folders in listings. */
  folders: boolean;
}

const MiB = 1024 * 1024;

/** Kept times: whole and fractional milliseconds, years ago (not a write's own time). */
const times = [Date.parse('2020-02-02T02:02:02.000Z'), Date.parse('2019-09-09T09:09:09.123Z') + 0.25];

/** Bytes that differ at every offset (a misplaced range or a truncated write shows). */
function pattern(size: number, seed = 0): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[i] = (i * 7 + seed + (i >> 8)) & 0xff;
  return out;
}

/** A stream of `bytes` in chunks of `chunk` bytes (several per write, as a network body comes). */
function streamOf(bytes: Buffer, chunk = 64 * 1024): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += chunk) parts.push(bytes.subarray(i, i + chunk));
  return Readable.from(parts, { objectMode: false });
}

/** A stream that gives `bytes`, then fails with `error` (or closes without ending, as a client gone). */
function brokenStream(bytes: Buffer, how: 'error' | 'close'): Readable {
  let sent = false;
  return new Readable({
    read() {
      if (!sent) {
        sent = true;
        this.push(bytes);
        return;
      }
      setImmediate(() => this.destroy(how === 'error' ? new Error('the client went away') : undefined));
    },
  });
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const byUtf8 = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

async function listed(backend: Backend, prefix: string, emptyDirs = false): Promise<BackendEntry[]> {
  const out: BackendEntry[] = [];
  for await (const e of backend.list(prefix, { emptyDirs })) out.push(e);
  return out;
}

/** The BackendError a promise rejects with (fails the test when it resolves or rejects otherwise). */
async function backendErrorOf(promise: Promise<unknown>): Promise<BackendError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'should reject with a BackendError').toBeInstanceOf(BackendError);
  return err as BackendError;
}

/** A read that must fail: rejects, or its stream errors. */
async function readFails(backend: Backend, key: string): Promise<void> {
  await expect(backend.get(key).then(readAll)).rejects.toThrow();
}

/** Runs `work` on the items, `size` at a time. */
async function inBatches<T>(items: T[], size: number, work: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(work));
}

/** Keys whose characters break careless encoding (URLs, signatures, copy sources, file names). */
const TRICKY_KEYS = [
  'sp ace/file name.txt',
  'plus+sign/a+b=c&d.txt',
  'percent%/100%25 and %2F.txt',
  'query?and#hash/x?y#z',
  'quotes/it\'s "quoted" (1) [2] {3}.txt',
  'marks/~!@$^*,;:`|<>.txt',
  'unicode/中文 文件/ファイル.txt',
  'unicode/ünïcödé/Ωmega ✓.txt',
  'unicode/emoji 😀🚀.txt',
  'unicode/\u00e9 composed vs e\u0301 decomposed',
  '-leading dash/.hidden',
];

/** Keys that leave the space's root, which every backend refuses. */
const OUTSIDE_KEYS = ['..', '../escape', 'a/../../escape', './a', 'a/./b', 'a/..', 'nul\0byte'];

/**
 * Faults of the store behind a backend (a test server), each with its reason: the one check that
 * meets it is left out for that store, and is made on every other (local, and moto for S3).
 */
export interface StoreQuirks {
  /** The store answers `bytes=0-0` with the whole object. */
  firstByteRange?: string;
  /** The store writes an object in place, so concurrent PUTs of one key interleave or fail: the race is not run on it. */
  overwritesInPlace?: string;
  /** The store lists keys in another order than their bytes'. */
  listsOutOfOrder?: string;
  /** The store decodes a copy's source as `decodeURI` does (`%2B` stays), so renames of keys with `+&=?#$,;:@` fail. */
  copySourceDecodedAsUri?: string;
  /** The store cannot list unfinished multipart uploads, which S3's cleanup looks for. */
  noMultipartListing?: string;
}

export function describeBackendConformance(
  name: string,
  kind: BackendKind,
  make: () => Promise<BackendUnderTest>,
  quirks: StoreQuirks = {},
): void {
  describe(`backend conformance: ${name}`, () => {
    let made: BackendUnderTest[] = [];
    let secrets: string[] = [];
    /** A fresh, empty backend for one test. */
    const fresh = async (): Promise<Backend> => {
      const m = await make();
      made.push(m);
      secrets = m.secrets ?? [];
      return m.backend;
    };
    afterEach(async () => {
      for (const m of made) await m.cleanup();
      made = [];
    });
    /** Keys as listed, put in byte order where the store does not keep it (its quirk). */
    const keysOf = async (backend: Backend, prefix: string) => {
      const keys = (await listed(backend, prefix)).map((e) => e.key);
      return quirks.listsOutOfOrder ? keys.sort(byUtf8) : keys;
    };

    it('has exactly the optional methods of its kind, and describes itself without secrets', async () => {
      const b = await fresh();
      const has = (m: keyof Backend) => typeof b[m] === 'function';
      expect({ putFile: has('putFile'), localFile: has('localFile'), openFile: has('openFile'), makeDir: has('makeDir') }).toEqual({
        putFile: kind.localFiles,
        localFile: kind.localFiles,
        openFile: kind.localFiles,
        makeDir: kind.folders,
      });
      expect(b.describe()).toMatch(/\S/);
      for (const secret of secrets) expect(b.describe()).not.toContain(secret);
    });

    describe('put and get', () => {
      const sizes = { empty: 0, small: 1000, 'just past 1 MiB': MiB + 1, 'past a multipart part (9 MiB)': 9 * MiB + 17 };
      for (const [label, size] of Object.entries(sizes)) {
        it(`round-trips ${label} content, from a Buffer and from a stream, and answers its size`, async () => {
          const b = await fresh();
          const bytes = pattern(size, size);
          expect((await b.put('rt/buffer', bytes)).size).toBe(size);
          expect((await b.put('rt/stream', streamOf(bytes))).size).toBe(size);
          for (const key of ['rt/buffer', 'rt/stream']) {
            expect(sha(await readAll(await b.get(key))), key).toBe(sha(bytes));
            expect((await b.stat(key))?.size, key).toBe(size);
          }
          expect((await listed(b, 'rt')).map((e) => [e.key, e.size])).toEqual([
            ['rt/buffer', size],
            ['rt/stream', size],
          ]);
        });
      }

      it('stores a scratch put (a temporary name, written in place) as put does', async () => {
        const b = await fresh();
        const bytes = pattern(MiB + 7);
        expect((await b.put('tmp/s1', streamOf(bytes), { scratch: true })).size).toBe(bytes.length);
        expect((await b.put('tmp/s2', Buffer.from('small'), { scratch: true })).size).toBe(5);
        expect((await readAll(await b.get('tmp/s1'))).equals(bytes)).toBe(true);
        expect((await readAll(await b.get('tmp/s2'))).toString()).toBe('small');
      });

      it('takes a stream of many small chunks', async () => {
        const b = await fresh();
        const bytes = pattern(300 * 1024 + 3);
        expect((await b.put('chunks', streamOf(bytes, 1000))).size).toBe(bytes.length);
        expect((await readAll(await b.get('chunks'))).equals(bytes)).toBe(true);
      });

      it('replaces a key entirely: a shorter overwrite leaves none of the longer content', async () => {
        const b = await fresh();
        await b.put('ow/buf', pattern(2 * MiB, 1));
        await b.put('ow/buf', Buffer.from('short'));
        expect((await readAll(await b.get('ow/buf'))).toString()).toBe('short');
        await b.put('ow/stream', streamOf(pattern(2 * MiB, 2)));
        await b.put('ow/stream', streamOf(Buffer.from('also short')));
        expect((await readAll(await b.get('ow/stream'))).toString()).toBe('also short');
        expect((await b.stat('ow/stream'))?.size).toBe(10);
      });

      it('says whether a put replaced a file when asked (reportReplaced), and never says wrong', async () => {
        const b = await fresh();
        const small = () => Buffer.from('x');
        const large = () => streamOf(pattern(MiB + 5));
        for (const [key, source] of [
          ['rep/buffer', small],
          ['rep/stream', large],
        ] as const) {
          expect((await b.put(key, source(), { reportReplaced: true })).replaced, key).toBe(false);
          expect((await b.put(key, source(), { reportReplaced: true })).replaced, key).toBe(true);
          // Not asked: absent, or the truth.
          expect([undefined, true], key).toContain((await b.put(key, source())).replaced);
          expect([undefined, false], key).toContain((await b.put(`${key}-new`, source())).replaced);
        }
      });

      // A store that writes objects in place cannot keep this; every other store is held to it.
      if (!quirks.overwritesInPlace) {
        it('ends concurrent puts to one key with one of them, whole, and readers meanwhile see one whole version', async () => {
          const b = await fresh();
          const versions = [
            ...Array.from({ length: 4 }, (_, i) => pattern(50_000 + i, i)),
            ...Array.from({ length: 4 }, (_, i) => pattern(MiB + 100 * i, 10 + i)),
          ];
          await b.put('race', versions[0]!);
          const reads: Promise<Buffer>[] = [];
          const puts = await Promise.all(
            versions.map(async (v, i) => {
              reads.push(b.get('race').then(readAll));
              return b.put('race', i % 2 ? v : streamOf(v));
            }),
          );
          expect(puts.map((p) => p.size)).toEqual(versions.map((v) => v.length));
          for (const read of await Promise.all(reads)) expect(versions.map(sha)).toContain(sha(read));
          const got = await readAll(await b.get('race'));
          expect(versions.map(sha)).toContain(sha(got));
          expect((await b.stat('race'))?.size).toBe(got.length);
          expect(await keysOf(b, '')).toEqual(['race']);
        });
      }

      for (const how of ['error', 'close'] as const) {
        for (const [label, sent] of [
          ['small', 10_000],
          ['past 1 MiB', 2 * MiB],
          ['past a multipart part', 9 * MiB],
        ] as const) {
          it(`rejects a ${label} stream that ${how === 'error' ? 'fails' : 'closes early'}, and leaves the key as it was`, async () => {
            const b = await fresh();
            await expect(b.put('broken/new', brokenStream(pattern(sent), how))).rejects.toThrow();
            await b.put('broken/old', Buffer.from('the old content'));
            await expect(b.put('broken/old', brokenStream(pattern(sent), how))).rejects.toThrow();
            expect(await b.stat('broken/new')).toBeUndefined();
            expect((await readAll(await b.get('broken/old'))).toString()).toBe('the old content');
            expect(await keysOf(b, '')).toEqual(['broken/old']);
            // The failed put took its leftovers (a partial file, a multipart upload) with it.
            if (!quirks.noMultipartListing) expect(await b.cleanup(Date.now() + 3_600_000)).toBe(0);
          });
        }
      }
    });

    describe('ranged reads', () => {
      const size = MiB + 1000;
      const bytes = pattern(size, 3);
      /** Whether the range read gives exactly `bytes[from, to)`. */
      const reads = async (b: Backend, range: { start: number; end: number }, from: number, to = from) =>
        (await readAll(await b.get('ranged', range))).equals(bytes.subarray(from, to));

      it('reads the first byte, a middle stretch, the last byte, and across a MiB boundary', async () => {
        const b = await fresh();
        await b.put('ranged', bytes);
        if (!quirks.firstByteRange) expect(await reads(b, { start: 0, end: 0 }, 0, 1), 'first byte').toBe(true);
        expect(await reads(b, { start: 0, end: 9 }, 0, 10), 'first ten').toBe(true);
        expect(await reads(b, { start: 1000, end: 1999 }, 1000, 2000), 'middle').toBe(true);
        expect(await reads(b, { start: MiB - 10, end: MiB + 10 }, MiB - 10, MiB + 11), 'across 1 MiB').toBe(true);
        expect(await reads(b, { start: size - 1, end: size - 1 }, size - 1, size), 'last byte').toBe(true);
        expect(await reads(b, { start: 5, end: size - 1 }, 5, size), 'to the end').toBe(true);
      });

      it('stops a range whose end is past the last byte there, and reads nothing from a start past it', async () => {
        const b = await fresh();
        await b.put('ranged', bytes);
        expect(await reads(b, { start: size - 10, end: size + 100 }, size - 10, size), 'end past the end').toBe(true);
        expect(await reads(b, { start: size, end: size + 10 }, size), 'start at the end').toBe(true);
        expect(await reads(b, { start: size + 1000, end: size + 2000 }, size), 'start past the end').toBe(true);
      });

      it('fails a ranged read of a missing key as not_found', async () => {
        const b = await fresh();
        expect((await backendErrorOf(b.get('nothing', { start: 0, end: 9 }))).code).toBe('not_found');
      });
    });

    describe('stat, missing keys, remove', () => {
      it('stats a file: its key, size and a time', async () => {
        const b = await fresh();
        await b.put('st/file', Buffer.from('12345'));
        const st = await b.stat('st/file');
        expect(st).toMatchObject({ key: 'st/file', size: 5 });
        expect(Number.isFinite(st!.mtimeMs) && st!.mtimeMs > 0).toBe(true);
        await b.put('st/empty', Buffer.alloc(0));
        expect(await b.stat('st/empty')).toMatchObject({ key: 'st/empty', size: 0 });
      });

      it('stats a missing key, a folder and the root as undefined', async () => {
        const b = await fresh();
        await b.put('st/dir/file', Buffer.from('x'));
        expect(await b.stat('st/missing')).toBeUndefined();
        expect(await b.stat('never/was/here')).toBeUndefined();
        expect(await b.stat('st/dir')).toBeUndefined();
        expect(await b.stat('st')).toBeUndefined();
        expect(await b.stat('')).toBeUndefined();
      });

      it('fails get of a missing key with BackendError not_found', async () => {
        const b = await fresh();
        expect((await backendErrorOf(b.get('missing'))).code).toBe('not_found');
        expect((await backendErrorOf(b.get('missing/deeper/key'))).code).toBe('not_found');
      });

      it('fails a read of a folder', async () => {
        const b = await fresh();
        await b.put('dir/file', Buffer.from('x'));
        await readFails(b, 'dir');
      });

      it('removes a file; removing a missing key, or the same twice, succeeds', async () => {
        const b = await fresh();
        await b.put('rm/a', Buffer.from('a'));
        await b.put('rm/b', Buffer.from('b'));
        await b.remove('rm/a');
        expect(await b.stat('rm/a')).toBeUndefined();
        expect((await backendErrorOf(b.get('rm/a'))).code).toBe('not_found');
        expect(await keysOf(b, '')).toEqual(['rm/b']);
        await b.remove('rm/a');
        await b.remove('never/there');
        expect(await keysOf(b, '')).toEqual(['rm/b']);
      });
    });

    describe('rename', () => {
      it('moves a file to a new key and over an existing one', async () => {
        const b = await fresh();
        const bytes = pattern(MiB + 3);
        await b.put('mv/from', bytes);
        await b.rename('mv/from', 'mv/deeper/to');
        expect(await b.stat('mv/from')).toBeUndefined();
        expect((await readAll(await b.get('mv/deeper/to'))).equals(bytes)).toBe(true);
        await b.put('mv/other', Buffer.from('other'));
        await b.rename('mv/other', 'mv/deeper/to');
        expect((await readAll(await b.get('mv/deeper/to'))).toString()).toBe('other');
        expect(await keysOf(b, '')).toEqual(['mv/deeper/to']);
      });

      it('fails to rename a missing key with not_found, and changes nothing', async () => {
        const b = await fresh();
        await b.put('mv/to', Buffer.from('kept'));
        expect((await backendErrorOf(b.rename('mv/missing', 'mv/to'))).code).toBe('not_found');
        expect((await readAll(await b.get('mv/to'))).toString()).toBe('kept');
      });
    });

    describe('list', () => {
      it('lists what is at or under a key or folder, never keys that merely start with the same characters', async () => {
        const b = await fresh();
        for (const key of ['p/a', 'p/b/c', 'p/b/d/e', 'pq/x', 'p-1', 'p.txt', 'q']) await b.put(key, Buffer.from(key));
        expect(await keysOf(b, 'p')).toEqual(['p/a', 'p/b/c', 'p/b/d/e']);
        expect(await keysOf(b, 'p/')).toEqual(['p/a', 'p/b/c', 'p/b/d/e']);
        expect(await keysOf(b, 'p/b')).toEqual(['p/b/c', 'p/b/d/e']);
        // A key lists as itself.
        expect(await keysOf(b, 'p/a')).toEqual(['p/a']);
        expect(await keysOf(b, 'p.txt')).toEqual(['p.txt']);
        expect(await keysOf(b, 'nothing')).toEqual([]);
        expect(await keysOf(b, 'p/nothing')).toEqual([]);
        expect(await keysOf(b, '')).toEqual(['p-1', 'p.txt', 'p/a', 'p/b/c', 'p/b/d/e', 'pq/x', 'q']);
      });

      it('lists in order of the keys as UTF-8 bytes, not folder by folder nor as JavaScript compares strings', async () => {
        const b = await fresh();
        // '-' and '.' sort before '/', '0' after it; U+E000 sorts before an emoji in UTF-8, after it in UTF-16.
        const keys = ['o/a/b', 'o/a-c', 'o/a0', 'o/a.b', 'o/A', 'o/a/c/d', 'o/\ue000', 'o/😀', 'o/é', 'o/z', 'o/Z', 'o/a b'];
        await Promise.all(keys.map((k) => b.put(k, Buffer.from(k))));
        expect(await keysOf(b, 'o')).toEqual([...keys].sort(byUtf8));
      });

      it('gives each entry its size and time', async () => {
        const b = await fresh();
        await b.put('sz/a', pattern(10));
        await b.put('sz/b', streamOf(pattern(MiB + 1)));
        const entries = await listed(b, 'sz');
        expect(entries.map((e) => [e.key, e.size])).toEqual([
          ['sz/a', 10],
          ['sz/b', MiB + 1],
        ]);
        for (const e of entries) expect(e.mtimeMs).toBeGreaterThan(0);
      });

      it('lists past 1,000 entries (pages), each once and in order', async () => {
        const b = await fresh();
        // One folder of more than 1,000 files, and others after it.
        const keys = Array.from({ length: 1060 }, (_, i) => `many/d${i < 1010 ? 0 : i % 3}/f${String(i).padStart(4, '0')}`);
        // With a kept time: a backend that records times gives them page by page.
        await inBatches(keys, 32, (k) => b.put(k, Buffer.from(k), { mtimeMs: times[0] }));
        const entries = await listed(b, 'many');
        expect(await keysOf(b, 'many')).toEqual([...keys].sort(byUtf8));
        for (const e of entries) if (e.approximateTime !== true) expect(e.mtimeMs, e.key).toBe(times[0]);
        expect(await keysOf(b, 'many/d0')).toEqual(keys.filter((k) => k.startsWith('many/d0/')).sort(byUtf8));
        expect(await keysOf(b, 'many/d1')).toEqual(keys.filter((k) => k.startsWith('many/d1/')).sort(byUtf8));
      });

      it('leaves out what is inside a .yunji folder below the prefix, and lists inside one', async () => {
        const b = await fresh();
        for (const key of ['.yunji/tmp/t1', '.yunji/shards/AB/ABCD', 'r/.yunji/tmp/t2', 'r/file', 'r/s/.yunji/x', 'f/.yunji'])
          await b.put(key, Buffer.from(key));
        // A file of that name is a file like any other.
        expect(await keysOf(b, '')).toEqual(['f/.yunji', 'r/file']);
        expect(await keysOf(b, 'r')).toEqual(['r/file']);
        expect(await keysOf(b, '.yunji/tmp')).toEqual(['.yunji/tmp/t1']);
        expect(await keysOf(b, '.yunji/shards')).toEqual(['.yunji/shards/AB/ABCD']);
        expect(await keysOf(b, 'r/.yunji/tmp')).toEqual(['r/.yunji/tmp/t2']);
      });

      it(kind.folders ? 'lists empty folders only when asked, as keys ending in /' : 'lists no empty folders even when asked', async () => {
        const b = await fresh();
        await b.put('f/file', Buffer.from('x'));
        if (kind.folders) {
          await b.makeDir!('f/empty/inner');
          await b.makeDir!('f/full');
          await b.put('f/full/x', Buffer.from('x'));
          expect(await b.stat('f/empty/inner')).toBeUndefined();
          expect(await keysOf(b, 'f')).toEqual(['f/file', 'f/full/x']);
        }
        const withDirs = await listed(b, 'f', true);
        expect(withDirs.map((e) => [e.key, e.emptyDir === true])).toEqual(
          kind.folders
            ? [
                ['f/empty/inner/', true],
                ['f/file', false],
                ['f/full/x', false],
              ]
            : [['f/file', false]],
        );
      });
    });

    describe('keys', () => {
      it('round-trips keys with spaces, +, %, ?, #, quotes and other scripts through every operation', async () => {
        const b = await fresh();
        for (const key of TRICKY_KEYS) {
          const bytes = Buffer.from(`content of ${key}`);
          expect((await b.put(key, bytes, { reportReplaced: true })).replaced, key).toBe(false);
          expect((await b.put(`${key}.stream`, streamOf(pattern(MiB + 2)))).size, key).toBe(MiB + 2);
          expect((await readAll(await b.get(key))).equals(bytes), key).toBe(true);
          expect((await readAll(await b.get(key, { start: 0, end: 6 }))).toString(), key).toBe('content');
          expect((await b.stat(key))?.size, key).toBe(bytes.length);
          expect(await keysOf(b, key), key).toEqual([key]);
        }
        const all = TRICKY_KEYS.flatMap((k) => [k, `${k}.stream`]).sort(byUtf8);
        expect(await keysOf(b, '')).toEqual(all);
        const renamable = quirks.copySourceDecodedAsUri ? TRICKY_KEYS.filter((k) => decodeURI(encodeURIComponent(k)) === k) : TRICKY_KEYS;
        for (const key of renamable) {
          await b.rename(key, `${key} moved`);
          expect((await readAll(await b.get(`${key} moved`))).toString(), key).toBe(`content of ${key}`);
          expect(await b.stat(key), key).toBeUndefined();
          await b.remove(`${key} moved`);
        }
        for (const key of TRICKY_KEYS) {
          await b.remove(key);
          await b.remove(`${key}.stream`);
        }
        expect(await keysOf(b, '')).toEqual([]);
      });

      it('keeps keys that differ only in Unicode normalization apart', async () => {
        const b = await fresh();
        await b.put('nf/\u00e9', Buffer.from('composed'));
        await b.put('nf/e\u0301', Buffer.from('decomposed'));
        expect((await readAll(await b.get('nf/\u00e9'))).toString()).toBe('composed');
        expect((await readAll(await b.get('nf/e\u0301'))).toString()).toBe('decomposed');
        expect(await keysOf(b, 'nf')).toEqual(['nf/e\u0301', 'nf/\u00e9']);
      });

      it('refuses keys that leave the root (. and .. segments, NUL) as invalid paths, which asClientError makes a 400', async () => {
        const b = await fresh();
        await b.put('inside', Buffer.from('x'));
        for (const key of OUTSIDE_KEYS) {
          const operations = [
            () => b.put(key, Buffer.from('x')),
            () => b.put(key, streamOf(Buffer.from('x'))),
            () => b.get(key),
            () => b.stat(key),
            () => b.remove(key),
            () => b.rename('inside', key),
            () => b.rename(key, 'elsewhere'),
            () => listed(b, key),
          ];
          for (const operation of operations) {
            const err = await backendErrorOf(operation());
            expect(err.code, JSON.stringify(key)).toBe('invalid_path');
            const client = asClientError(err);
            expect(client, JSON.stringify(key)).toBeInstanceOf(AppError);
            expect((client as AppError).kind, JSON.stringify(key)).toBe('bad_request');
          }
        }
        expect(await keysOf(b, '')).toEqual(['inside']);
      });

      it('stores a backslash in a key, or refuses it as an invalid path', async () => {
        const b = await fresh();
        const key = 'back\\slash/x';
        const stored = await b.put(key, Buffer.from('bs')).then(
          () => true,
          (err: unknown) => {
            expect(err).toBeInstanceOf(BackendError);
            expect((err as BackendError).code).toBe('invalid_path');
            return false;
          },
        );
        expect(await keysOf(b, '')).toEqual(stored ? [key] : []);
        if (stored) expect((await readAll(await b.get(key))).toString()).toBe('bs');
      });
    });

    describe('modification times', () => {
      it('keeps the time a put is given, from a Buffer and from a stream', async () => {
        const b = await fresh();
        for (const [i, mtimeMs] of times.entries()) {
          await b.put(`t/buf${i}`, Buffer.from('timed'), { mtimeMs });
          await b.put(`t/stream${i}`, streamOf(pattern(MiB + 9)), { mtimeMs });
          for (const key of [`t/buf${i}`, `t/stream${i}`]) expect(Math.abs((await b.stat(key))!.mtimeMs - mtimeMs), key).toBeLessThan(1);
        }
        for (const e of await listed(b, 't')) {
          const kept = times[Number(e.key.at(-1))]!;
          // A listing gives the kept time, or says that its time is the store's own (stat tells the kept one).
          if (e.approximateTime !== true) expect(Math.abs(e.mtimeMs - kept), e.key).toBeLessThan(1);
        }
      });

      it('gives a file written without a time the time of its write, also over a timed one and once renamed', async () => {
        const b = await fresh();
        await b.put('w/old', Buffer.from('old bytes'), { mtimeMs: times[0] });
        // Stores keep LastModified in whole seconds.
        const before = Date.now() - 1000;
        await b.put('w/new', Buffer.from('new'));
        await b.put('w/stream', streamOf(pattern(MiB + 1)));
        await b.put('w/old', Buffer.from('rewritten'));
        await b.rename('w/new', 'w/renamed');
        const after = Date.now() + 1000;
        for (const key of ['w/renamed', 'w/stream', 'w/old']) {
          const t = (await b.stat(key))!.mtimeMs;
          expect(t >= before && t <= after, `${key}: ${new Date(t).toISOString()}`).toBe(true);
        }
        for (const e of await listed(b, 'w'))
          expect(e.mtimeMs >= before && e.mtimeMs <= after, `${e.key} listed at ${new Date(e.mtimeMs).toISOString()}`).toBe(true);
      });

      it('moves a kept time with a renamed file', async () => {
        const b = await fresh();
        await b.put('rt/from', Buffer.from('timed'), { mtimeMs: times[0] });
        await b.rename('rt/from', 'rt/to');
        expect(Math.abs((await b.stat('rt/to'))!.mtimeMs - times[0]!)).toBeLessThan(1);
      });
    });

    if (kind.localFiles) {
      describe('local files', () => {
        let dir: string;
        afterEach(() => rmSync(dir, { recursive: true, force: true }));

        for (const size of [5, 2 * MiB]) {
          it(`putFile stores a copy of a ${size}-byte file with its kept time, replacing what was there`, async () => {
            const b = await fresh();
            dir = mkdtempSync(join(tmpdir(), 'yunji-conf-src-'));
            const bytes = pattern(size, 5);
            writeFileSync(join(dir, 'src'), bytes);
            utimesSync(join(dir, 'src'), new Date(), new Date(0));
            await b.put('pf/to', Buffer.from('replaced'));
            expect((await b.putFile!('pf/to', join(dir, 'src'), { mtimeMs: times[0] })).size).toBe(size);
            expect((await readAll(await b.get('pf/to'))).equals(bytes)).toBe(true);
            expect(Math.abs((await b.stat('pf/to'))!.mtimeMs - times[0]!)).toBeLessThan(1);
          });
        }

        it('putFile of a missing file fails with not_found and stores nothing', async () => {
          const b = await fresh();
          dir = mkdtempSync(join(tmpdir(), 'yunji-conf-src-'));
          expect((await backendErrorOf(b.putFile!('pf/x', join(dir, 'none')))).code).toBe('not_found');
          expect(await keysOf(b, '')).toEqual([]);
        });

        it('localFile and openFile give the file a key names; openFile of a missing key is not_found', async () => {
          const b = await fresh();
          dir = mkdtempSync(join(tmpdir(), 'yunji-conf-src-'));
          await b.put('lf/file', Buffer.from('local bytes'));
          const { readFile } = await import('node:fs/promises');
          expect((await readFile(await b.localFile!('lf/file'))).toString()).toBe('local bytes');
          const handle = await b.openFile!('lf/file');
          try {
            expect((await handle.readFile()).toString()).toBe('local bytes');
          } finally {
            await handle.close();
          }
          expect((await backendErrorOf(b.openFile!('lf/missing'))).code).toBe('not_found');
        });
      });
    }
  });
}
