import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WALK_BAD_NAME, WALK_EMPTY_DIR, WALK_ERROR, WALK_FILE, type FsWork } from '../../src/backends/fsWork.ts';
import { fsWorkCases } from '../helpers/fsWork.ts';

/** An entry of a walk, as one record. */
interface Entry {
  key: string;
  kind: number;
  size: number;
  mtimeMs: number;
  note?: string;
  error?: { code: string; message: string };
}

/** A walk's pages, each as its entries. */
async function pagesOf(fs: FsWork, dir: string, key: string, emptyDirs = false, skip = '.yunji'): Promise<Entry[][]> {
  const pages: Entry[][] = [];
  for await (const page of fs.walkDirectory(dir, key, skip, emptyDirs)) {
    pages.push(
      page.keys.map((k, i) => ({
        key: k,
        kind: page.kinds[i]!,
        size: page.sizes[i]!,
        mtimeMs: page.mtimes[i]!,
        ...(page.notes[i] !== undefined ? { note: page.notes[i] } : {}),
        ...(page.kinds[i] === WALK_ERROR ? { error: { code: page.error!.code, message: page.error!.message } } : {}),
      })),
    );
  }
  return pages;
}

const walked = async (fs: FsWork, dir: string, key: string, emptyDirs = false, skip = '.yunji') =>
  (await pagesOf(fs, dir, key, emptyDirs, skip)).flat();
const keysOf = (entries: Entry[]) => entries.map((e) => e.key);
const utf8Order = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

/** Makes `segments` folders one inside the other from inside (the whole path may pass PATH_MAX), and runs `then` in the deepest. */
function deepFolders(base: string, segment: string, segments: number, then: string): void {
  execFileSync('sh', [
    '-c',
    `mkdir "${base}" && cd "${base}" && for i in $(seq ${segments}); do mkdir ${segment} && cd ${segment}; done && ${then}`,
  ]);
}

/**
 * The small file system work (src/backends/fsWork.ts), the same expectations for the native module
 * and for pure Node: results, order, error codes and messages, and what is left on disk.
 */
describe.each(fsWorkCases)('small file system work: $name', ({ fs: maybeFs }) => {
  const fs = maybeFs!;
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'yunji-fswork-'));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  describe.skipIf(!maybeFs)('writeSmallFile', () => {
    it('writes through a partial file, says whether a file was replaced, and leaves no partial file', async () => {
      const target = join(root, 't');
      expect(await fs.writeSmallFile({ partial: join(root, 'p1'), target, bytes: Buffer.from('first') })).toEqual({
        replaced: false,
        size: 5,
      });
      expect(await fs.writeSmallFile({ partial: join(root, 'p2'), target, bytes: Buffer.from('second!') })).toEqual({
        replaced: true,
        size: 7,
      });
      expect(await fs.writeSmallFile({ partial: join(root, 'p3'), target: join(root, 'empty'), bytes: new Uint8Array(0) })).toEqual({
        replaced: false,
        size: 0,
      });
      expect(readFileSync(target, 'utf8')).toBe('second!');
      expect(readdirSync(root).sort()).toEqual(['empty', 't']);
    });

    it('writes in place when the partial file is the target, and never over a file that is there', async () => {
      const path = join(root, 'in-place');
      expect(await fs.writeSmallFile({ partial: path, target: path, bytes: Buffer.from('x') })).toEqual({ replaced: false, size: 1 });
      await expect(fs.writeSmallFile({ partial: path, target: path, bytes: Buffer.from('yy') })).rejects.toMatchObject({
        code: 'EEXIST',
        message: `EEXIST: file already exists, open '${path}'`,
      });
      expect(readFileSync(path, 'utf8')).toBe('x');
    });

    it('replaces a symlink at the target instead of writing through it', async () => {
      writeFileSync(join(root, 'real'), 'real');
      symlinkSync(join(root, 'real'), join(root, 'link'));
      symlinkSync(join(root, 'nowhere'), join(root, 'dangling'));
      expect(await fs.writeSmallFile({ partial: join(root, 'p1'), target: join(root, 'link'), bytes: Buffer.from('mine') })).toEqual({
        replaced: true,
        size: 4,
      });
      expect(await fs.writeSmallFile({ partial: join(root, 'p2'), target: join(root, 'dangling'), bytes: Buffer.from('mine') })).toEqual({
        replaced: true,
        size: 4,
      });
      expect(readFileSync(join(root, 'real'), 'utf8')).toBe('real');
      for (const name of ['link', 'dangling']) {
        expect(lstatSync(join(root, name)).isFile()).toBe(true);
        expect(readFileSync(join(root, name), 'utf8')).toBe('mine');
      }
    });

    it('of many writers of one new name, exactly one hears it was new; every write lands whole', async () => {
      const target = join(root, 'contended');
      const results = await Promise.all(
        Array.from({ length: 40 }, (_, i) => fs.writeSmallFile({ partial: join(root, `p${i}`), target, bytes: Buffer.alloc(100 + i, i) })),
      );
      expect(results.filter((r) => !r.replaced)).toHaveLength(1);
      const content = readFileSync(target);
      expect(results.map((r) => r.size)).toContain(content.length);
      expect(content.equals(Buffer.alloc(content.length, content.length - 100))).toBe(true);
      const files = Array.from({ length: 300 }, (_, i) => ({ target: join(root, `f${i}`), bytes: Buffer.alloc(1000 + i, i % 256) }));
      await Promise.all(files.map((f, i) => fs.writeSmallFile({ partial: join(root, `q${i}`), target: f.target, bytes: f.bytes })));
      for (const f of files) expect(readFileSync(f.target).equals(f.bytes)).toBe(true);
      expect(readdirSync(root).filter((n) => /^[pq]\d/.test(n))).toEqual([]);
    });

    it('copies a file with its permissions, whatever the umask, and tells its size; never "replaced"', async () => {
      writeFileSync(join(root, 'source'), 'copied content');
      chmodSync(join(root, 'source'), 0o666);
      writeFileSync(join(root, 'target'), 'old');
      expect(await fs.writeSmallFile({ partial: join(root, 'p'), target: join(root, 'target'), copyOf: join(root, 'source') })).toEqual({
        replaced: false,
        size: 14,
      });
      expect(readFileSync(join(root, 'target'), 'utf8')).toBe('copied content');
      expect(statSync(join(root, 'target')).mode & 0o7777).toBe(0o666);
      expect(readdirSync(root).sort()).toEqual(['source', 'target']);
    });

    it('gives a file the time Node gives it, for content and for copies, before 1970 too', async () => {
      // Times whose fraction of a second does not survive a double exactly: the rounding must match libuv's.
      const times = [
        1_700_000_000_123.25, 1_700_000_000_999.875, 946_684_799_999.5, 1_234.0005, 1_800_000_000_000.5, 1_650_000_000_000.125,
      ];
      writeFileSync(join(root, 'source'), 'copied');
      for (const [i, mtimeMs] of times.entries()) {
        const reference = join(root, `reference${i}`);
        writeFileSync(reference, 'x');
        utimesSync(reference, Date.now() / 1000, mtimeMs / 1000);
        await fs.writeSmallFile({ partial: join(root, `w${i}`), target: join(root, `w${i}`), bytes: Buffer.from('x'), mtimeMs });
        await fs.writeSmallFile({ partial: join(root, `cp${i}`), target: join(root, `c${i}`), copyOf: join(root, 'source'), mtimeMs });
        const want = statSync(reference, { bigint: true }).mtimeNs;
        expect(statSync(join(root, `w${i}`), { bigint: true }).mtimeNs).toBe(want);
        expect(statSync(join(root, `c${i}`), { bigint: true }).mtimeNs).toBe(want);
      }
      // 1.5 s before the epoch (Node's utimes would take a negative number of seconds for "now").
      await fs.writeSmallFile({ partial: join(root, 'old'), target: join(root, 'old'), bytes: Buffer.from('x'), mtimeMs: -1500 });
      await fs.writeSmallFile({ partial: join(root, 'cp-old'), target: join(root, 'c-old'), copyOf: join(root, 'source'), mtimeMs: -1500 });
      expect(statSync(join(root, 'old'), { bigint: true }).mtimeNs).toBe(-1_500_000_000n);
      expect(statSync(join(root, 'c-old'), { bigint: true }).mtimeNs).toBe(-1_500_000_000n);
    });

    it('fails with the error Node would report, naming the call and the paths, and leaves no partial file', async () => {
      const partial = join(root, 'p');
      const fails = async (file: Parameters<FsWork['writeSmallFile']>[0], code: string, message: string) => {
        await expect(fs.writeSmallFile(file), message).rejects.toMatchObject({ code, message });
        expect(existsSync(partial), message).toBe(false);
      };
      const missing = join(root, 'missing', 't');
      await fails(
        { partial, target: missing, bytes: Buffer.from('x') },
        'ENOENT',
        `ENOENT: no such file or directory, link '${partial}' -> '${missing}'`,
      );
      await fails(
        { partial, target: missing, copyOf: join(root, 'nothing') },
        'ENOENT',
        `ENOENT: no such file or directory, copyfile '${join(root, 'nothing')}' -> '${partial}'`,
      );
      mkdirSync(join(root, 'dir'));
      await fails(
        { partial, target: join(root, 'dir'), bytes: Buffer.from('x') },
        'EISDIR',
        `EISDIR: illegal operation on a directory, rename '${partial}' -> '${join(root, 'dir')}'`,
      );
      writeFileSync(join(root, 'source'), 'x');
      await fails(
        { partial, target: join(root, 'dir'), copyOf: join(root, 'source') },
        'EISDIR',
        `EISDIR: illegal operation on a directory, rename '${partial}' -> '${join(root, 'dir')}'`,
      );
      await fails(
        { partial, target: missing, copyOf: join(root, 'dir') },
        'EISDIR',
        `EISDIR: illegal operation on a directory, copyfile '${join(root, 'dir')}' -> '${partial}'`,
      );
      writeFileSync(join(root, 'file'), 'x');
      const under = join(root, 'file', 'under');
      await fails(
        { partial, target: under, bytes: Buffer.from('x') },
        'ENOTDIR',
        `ENOTDIR: not a directory, link '${partial}' -> '${under}'`,
      );
      await fails(
        { partial: join(root, 'missing', 'p'), target: join(root, 't'), bytes: Buffer.from('x') },
        'ENOENT',
        `ENOENT: no such file or directory, open '${join(root, 'missing', 'p')}'`,
      );
      expect(readdirSync(root).sort()).toEqual(['dir', 'file', 'source']);
    });

    it('never touches a partial file that was already there', async () => {
      const partial = join(root, 'p');
      writeFileSync(partial, 'keep');
      writeFileSync(join(root, 'source'), 'x');
      await expect(fs.writeSmallFile({ partial, target: join(root, 't'), bytes: Buffer.from('x') })).rejects.toMatchObject({
        code: 'EEXIST',
        message: `EEXIST: file already exists, open '${partial}'`,
      });
      await expect(fs.writeSmallFile({ partial, target: join(root, 't'), copyOf: join(root, 'source') })).rejects.toMatchObject({
        code: 'EEXIST',
        message: `EEXIST: file already exists, copyfile '${join(root, 'source')}' -> '${partial}'`,
      });
      expect(readFileSync(partial, 'utf8')).toBe('keep');
      expect(existsSync(join(root, 't'))).toBe(false);
    });
  });

  describe.skipIf(!maybeFs)('walkDirectory', () => {
    it('gives keys in byte order, a folder sorting as its name and "/", each file with its size and time', async () => {
      // 'a' is a folder: 'a/b' sorts after 'a.b' and 'a-b' (as '/' after '.' and '-') and before 'a0'.
      // U+FFFA is EF BF BA in UTF-8, before the emoji's F0 …, though its UTF-16 unit sorts after a surrogate.
      const files = ['a-b', 'a.b', 'a/b', 'a/c/d', 'a0', 'B', 'é', '\u{1F600}', '\uFFFA', 'z/\u{1F600}', 'z/\uFFFA', 'z/\uFFFD'];
      for (const [i, f] of files.entries()) {
        mkdirSync(join(root, 't', f, '..'), { recursive: true });
        writeFileSync(join(root, 't', f), Buffer.alloc(i));
      }
      const entries = await walked(fs, join(root, 't'), 'k');
      expect(keysOf(entries)).toEqual(files.map((f) => `k/${f}`).sort(utf8Order));
      expect(keysOf(entries)).toEqual([
        'k/B',
        'k/a-b',
        'k/a.b',
        'k/a/b',
        'k/a/c/d',
        'k/a0',
        'k/z/\uFFFA',
        'k/z/\uFFFD',
        'k/z/\u{1F600}',
        'k/é',
        'k/\uFFFA',
        'k/\u{1F600}',
      ]);
      for (const e of entries) {
        const st = statSync(join(root, 't', e.key.slice(2)));
        expect(e, e.key).toEqual({ key: e.key, kind: WALK_FILE, size: st.size, mtimeMs: st.mtimeMs });
      }
      // With no key, paths are relative; a root given with a trailing slash walks the same.
      expect(keysOf(await walked(fs, join(root, 't') + '/', ''))).toEqual(keysOf(entries).map((k) => k.slice(2)));
    });

    it('follows no symlink and leaves out what is neither file nor folder', async () => {
      const outside = mkdtempSync(join(tmpdir(), 'yunji-fswork-outside-'));
      try {
        writeFileSync(join(outside, 'secret'), 'x');
        mkdirSync(join(root, 't', 'd'), { recursive: true });
        writeFileSync(join(root, 't', 'd', 'real'), 'x');
        symlinkSync(outside, join(root, 't', 'dir-link'));
        symlinkSync(join(outside, 'secret'), join(root, 't', 'file-link'));
        symlinkSync(join(root, 't'), join(root, 't', 'd', 'loop'));
        symlinkSync(join(root, 'nowhere'), join(root, 't', 'dangling'));
        execFileSync('mkfifo', [join(root, 't', 'fifo')]);
        expect(keysOf(await walked(fs, join(root, 't'), ''))).toEqual(['d/real']);
        // The root itself is the operator's: a symlink there is followed.
        symlinkSync(join(root, 't'), join(root, 'root-link'));
        expect(keysOf(await walked(fs, join(root, 'root-link'), ''))).toEqual(['d/real']);
      } finally {
        rmSync(outside, { recursive: true, force: true });
      }
    });

    it('leaves out folders named `skip` at every depth, but not files of that name', async () => {
      for (const f of ['.yunji/x', 'a/.yunji/y', 'a/kept', 'b/.yunji']) {
        mkdirSync(join(root, f, '..'), { recursive: true });
        writeFileSync(join(root, f), 'x');
      }
      expect(keysOf(await walked(fs, root, ''))).toEqual(['a/kept', 'b/.yunji']);
      expect(keysOf(await walked(fs, root, '', false, 'a'))).toEqual(['.yunji/x', 'b/.yunji']);
    });

    it('shows folders with nothing listed in them when asked, keyed with "/" where their files would sort', async () => {
      for (const d of ['e', 'x/empty', 'x/nested/inner', 'x/only-link', 'x/only-skipped/.yunji', 'x.y'])
        mkdirSync(join(root, d), { recursive: true });
      writeFileSync(join(root, 'x', 'a'), 'x');
      writeFileSync(join(root, 'x.y', 'f'), 'x');
      symlinkSync(join(root, 'x', 'a'), join(root, 'x', 'only-link', 'l'));
      const entries = await walked(fs, root, 'k', true);
      expect(entries.map((e) => [e.key, e.kind])).toEqual([
        ['k/e/', WALK_EMPTY_DIR],
        ['k/x.y/f', WALK_FILE],
        ['k/x/a', WALK_FILE],
        ['k/x/empty/', WALK_EMPTY_DIR],
        ['k/x/nested/inner/', WALK_EMPTY_DIR],
        ['k/x/only-link/', WALK_EMPTY_DIR],
        ['k/x/only-skipped/', WALK_EMPTY_DIR],
      ]);
      for (const e of entries.filter((e) => e.kind === WALK_EMPTY_DIR))
        expect(e, e.key).toMatchObject({ size: 0, mtimeMs: statSync(join(root, e.key.slice(2))).mtimeMs });
      expect(keysOf(await walked(fs, root, 'k'))).toEqual(['k/x.y/f', 'k/x/a']);
      // An empty root is an empty walk, not an entry.
      expect(await pagesOf(fs, join(root, 'e'), 'k', true)).toEqual([]);
    });

    it('shows names that are not UTF-8 as Node shows them, in the order of what it shows, with their bytes, and goes on', async () => {
      // A lone continuation byte, a cut-off sequence, an overlong form, a surrogate's encoding, a
      // code point past U+10FFFF, a valid name, and a valid name holding U+FFFD itself.
      const names = [
        [0x61, 0x80],
        [0x62, 0xe2, 0x82],
        [0xc0, 0xaf, 0x7a],
        [0xed, 0xa0, 0x80],
        [0xf4, 0x90, 0x80, 0x80],
        [0x61, 0xe2, 0x82, 0xac],
        [0x63, 0xef, 0xbf, 0xbd],
      ].map((b) => Buffer.from(b));
      const dir = join(root, 'n');
      mkdirSync(dir);
      for (const name of names) writeFileSync(Buffer.concat([Buffer.from(dir + '/'), name]), 'xy');
      // A folder with a bad name is an entry (sorted as its name and "/"), not walked into.
      const badFolder = Buffer.from([0x63, 0xff]);
      mkdirSync(Buffer.concat([Buffer.from(dir + '/'), badFolder]));
      writeFileSync(Buffer.concat([Buffer.from(dir + '/'), badFolder, Buffer.from('/inside')]), 'x');
      mkdirSync(join(dir, 'sub'));
      writeFileSync(join(dir, 'sub', 'ok'), 'x');
      const shown = [...names, badFolder].map((b) => {
        const name = b.toString('utf8');
        const bad = !Buffer.from(name).equals(b);
        const folder = b === badFolder;
        return {
          order: folder ? `${name}/` : name,
          entry: {
            key: `n/${name}`,
            kind: bad ? WALK_BAD_NAME : WALK_FILE,
            size: bad ? 0 : 2,
            ...(bad ? { note: b.toString('hex') } : {}),
          },
        };
      });
      shown.push({ order: 'sub/ok', entry: { key: 'n/sub/ok', kind: WALK_FILE, size: 1 } });
      shown.sort((a, b) => utf8Order(a.order, b.order));
      const entries = await walked(fs, dir, 'n');
      expect(entries.map(({ mtimeMs: _, ...e }) => e)).toEqual(shown.map((s) => s.entry));
      expect(entries.filter((e) => e.kind === WALK_BAD_NAME).every((e) => e.mtimeMs === 0)).toBe(true);
    });

    it('pages of 1,000 entries, each whole, the last with the rest', async () => {
      for (let i = 0; i < 2500; i++) {
        if (i % 100 === 0) mkdirSync(join(root, `d${String(i / 100).padStart(2, '0')}`));
        writeFileSync(join(root, `d${String(Math.floor(i / 100)).padStart(2, '0')}`, `f${String(i).padStart(4, '0')}`), 'x');
      }
      const pages = await pagesOf(fs, root, '');
      expect(pages.map((p) => p.length)).toEqual([1000, 1000, 500]);
      expect(keysOf(pages.flat())).toEqual(keysOf(pages.flat()).sort(utf8Order));
    });

    it('a walk left early lets go, and walks after it (and many at once) are whole', async () => {
      for (let i = 0; i < 3000; i++) {
        if (i % 100 === 0) mkdirSync(join(root, `d${i / 100}`));
        writeFileSync(join(root, `d${Math.floor(i / 100)}`, `f${i}`), 'x');
      }
      let seen = 0;
      for await (const page of fs.walkDirectory(root, '', '.yunji', false)) {
        seen += page.keys.length;
        break;
      }
      expect(seen).toBe(1000);
      const walks = await Promise.all(Array.from({ length: 5 }, () => walked(fs, root, '')));
      for (const w of walks) expect(w).toHaveLength(3000);
    });

    it('a missing root (or a file) is an empty walk; a root that cannot be listed rejects with its error', async () => {
      expect(await pagesOf(fs, join(root, 'missing'), '')).toEqual([]);
      writeFileSync(join(root, 'file'), 'x');
      expect(await pagesOf(fs, join(root, 'file'), '')).toEqual([]);
      symlinkSync('loop', join(root, 'loop'));
      await expect(pagesOf(fs, join(root, 'loop'), '')).rejects.toMatchObject({
        code: 'ELOOP',
        message: `ELOOP: too many symbolic links encountered, scandir '${join(root, 'loop')}'`,
      });
      const long = join(root, 'x'.repeat(5000));
      await expect(pagesOf(fs, long, '')).rejects.toMatchObject({
        code: 'ENAMETOOLONG',
        message: `ENAMETOOLONG: name too long, scandir '${long}'`,
      });
    });

    it('a folder that cannot be listed ends the walk with its error, after the entries before it', async () => {
      // 17 folders of 250 bytes, made one level at a time from inside: the deepest one's path is
      // longer than PATH_MAX (4,096 bytes), so listing it fails (ENAMETOOLONG; as root, permissions
      // cannot make a folder unreadable).
      const deep = join(root, 'deep');
      const segment = 'd'.repeat(250);
      try {
        deepFolders(deep, segment, 16, `mkdir ${segment}`);
        writeFileSync(join(deep, 'a'), 'x');
        writeFileSync(join(deep, 'z'), 'x');
        const pages = await pagesOf(fs, deep, 'k');
        const unlistable = `${deep}/${Array.from({ length: 17 }, () => segment).join('/')}`;
        expect(pages.flat()).toEqual([
          { key: 'k/a', kind: WALK_FILE, size: 1, mtimeMs: statSync(join(deep, 'a')).mtimeMs },
          {
            key: `k/${Array.from({ length: 17 }, () => segment).join('/')}`,
            kind: WALK_ERROR,
            size: 0,
            mtimeMs: 0,
            error: { code: 'ENAMETOOLONG', message: `ENAMETOOLONG: name too long, scandir '${unlistable}'` },
          },
        ]);
      } finally {
        // Node's recursive rm goes by whole paths, which are too long here.
        execFileSync('rm', ['-rf', deep]);
      }
    });
  });
});

describe.skipIf(!fsWorkCases[0]!.fs)('small file system work: where the two differ', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'yunji-fswork-'));
  });
  afterEach(() => execFileSync('rm', ['-rf', root]));

  it('a file whose path is too long in a folder whose path is not: the native module lists it, pure Node ends the walk there with the error', async () => {
    // 16 folders of 250 bytes (about 4,030 bytes of path), then a file of 200: the native module looks
    // at it relative to its open folder; Node can only go by its whole path.
    const deep = join(root, 'deep');
    const segment = 'd'.repeat(250);
    const name = 'f'.repeat(200);
    deepFolders(deep, segment, 16, `printf xyz > ${name}`);
    const key = `${Array.from({ length: 16 }, () => segment).join('/')}/${name}`;
    const [native, portable] = fsWorkCases.map((c) => c.fs!);
    const listed = await walked(native!, deep, '');
    expect(listed.map(({ mtimeMs: _, ...e }) => e)).toEqual([{ key, kind: WALK_FILE, size: 3 }]);
    expect(await walked(portable!, deep, '')).toEqual([
      {
        key,
        kind: WALK_ERROR,
        size: 0,
        mtimeMs: 0,
        error: { code: 'ENAMETOOLONG', message: `ENAMETOOLONG: name too long, stat '${deep}/${key}'` },
      },
    ]);
  });
});
