import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { chooseFsWork } from '../../src/backends/fsThreads.ts';
import { LocalBackend } from '../../src/backends/localBackend.ts';
import { fsWorkCases } from '../helpers/fsWork.ts';

/** LocalBackend on each implementation of its small file system work (test/backends/fsWork.test.ts tests them directly). */
describe.each(fsWorkCases)('LocalBackend with $name file system work', ({ fs, setting }) => {
  beforeAll(() => {
    chooseFsWork(setting);
  });

  /** Content in memory goes through the small-file writer: these pin what it must keep of `put`'s contract. */
  describe.skipIf(!fs)('small files written whole', () => {
    let root: string;
    let backend: LocalBackend;
    const partials = () => readdirSync(join(root, '.yunji', 'partial'));

    beforeEach(() => {
      root = mkdtempSync(join(tmpdir(), 'yunji-local-'));
      backend = new LocalBackend(root);
    });
    afterEach(() => rmSync(root, { recursive: true, force: true }));

    it('writes the bytes, says whether a file was replaced, and leaves no partial file', async () => {
      expect(await backend.put('a/b/c.bin', Buffer.from('first'))).toEqual({ size: 5, replaced: false });
      expect(await backend.put('a/b/c.bin', Buffer.from('second!'))).toEqual({ size: 7, replaced: true });
      expect(readFileSync(join(root, 'a/b/c.bin'), 'utf8')).toBe('second!');
      expect(partials()).toEqual([]);
    });

    it('keeps a given modification time to the sub-millisecond', async () => {
      const mtimeMs = 1_700_000_000_123.25;
      await backend.put('t.txt', Buffer.from('x'), { mtimeMs });
      expect(Math.abs(statSync(join(root, 't.txt')).mtimeMs - mtimeMs)).toBeLessThan(0.001);
    });

    it('keeps a time before 1970, for small and large files, written whole, streamed or copied', async () => {
      const mtimeMs = -86_400_000 * 365 + 123.5;
      const large = Buffer.alloc(2 * 1024 * 1024, 7);
      writeFileSync(join(root, 'large-source'), large);
      await backend.put('small', Buffer.from('x'), { mtimeMs });
      await backend.put('streamed', Readable.from([large]), { mtimeMs });
      await backend.putFile!('copied', join(root, 'large-source'), { mtimeMs });
      for (const key of ['small', 'streamed', 'copied'])
        expect(Math.abs(statSync(join(root, key)).mtimeMs - mtimeMs), key).toBeLessThan(0.001);
    });

    it('many writes at once all land, each whole', async () => {
      const files = Array.from({ length: 300 }, (_, i) => ({ key: `d${i % 7}/f${i}`, bytes: Buffer.alloc(1000 + i, i % 256) }));
      await Promise.all(files.map((f) => backend.put(f.key, f.bytes)));
      for (const f of files) expect(readFileSync(join(root, f.key)).equals(f.bytes)).toBe(true);
      expect(partials()).toEqual([]);
    });

    it('remakes a directory removed behind its back', async () => {
      await backend.put('gone/x', Buffer.from('1'));
      rmSync(join(root, 'gone'), { recursive: true });
      await backend.put('gone/y', Buffer.from('2'));
      expect(readFileSync(join(root, 'gone/y'), 'utf8')).toBe('2');
    });

    it('fails with the reason when a directory is in the way, and leaves nothing', async () => {
      mkdirSync(join(root, 'taken'), { recursive: true });
      await expect(backend.put('taken', Buffer.from('x'))).rejects.toThrow(/is a directory|in the way/);
      expect(partials()).toEqual([]);
      writeFileSync(join(root, 'file'), 'x');
      await expect(backend.put('file/under', Buffer.from('x'))).rejects.toThrow(/in the way|does not exist/);
      expect(partials()).toEqual([]);
    });

    it('refuses to write through a symbolic link leading out of the root', async () => {
      const outside = mkdtempSync(join(tmpdir(), 'yunji-outside-'));
      try {
        symlinkSync(outside, join(root, 'link'));
        await expect(backend.put('link/escape', Buffer.from('x'))).rejects.toThrow(/symbolic link/);
        // Not even a folder is made out there on the way.
        await expect(backend.put('link/new/deeper/escape', Buffer.from('x'))).rejects.toThrow(/symbolic link/);
        await expect(backend.makeDir('link/made')).rejects.toThrow(/symbolic link/);
        expect(readdirSync(outside)).toEqual([]);
      } finally {
        rmSync(outside, { recursive: true, force: true });
      }
    });

    it('follows no symlink at the last component, wherever it points: it is a file that is not there', async () => {
      const outside = mkdtempSync(join(tmpdir(), 'yunji-outside-'));
      try {
        writeFileSync(join(outside, 'secret'), 'secret');
        writeFileSync(join(root, 'real'), 'real');
        symlinkSync(join(outside, 'secret'), join(root, 'out'));
        symlinkSync(join(root, 'real'), join(root, 'in'));
        symlinkSync(root, join(root, 'self'));
        for (const key of ['out', 'in']) {
          expect(await backend.stat(key), key).toBeUndefined();
          await expect(backend.get(key), key).rejects.toMatchObject({ code: 'not_found', message: expect.stringMatching(/symbolic link/) });
          await expect(backend.openFile(key), key).rejects.toMatchObject({ code: 'not_found' });
          await expect(backend.putFile('copy', join(root, key)), key).rejects.toMatchObject({ code: 'not_found' });
          await expect(backend.get(`self/${key}`), key).rejects.toThrow(/symbolic link/);
        }
        const keys: string[] = [];
        for await (const e of backend.list('')) keys.push(e.key);
        expect(keys).toEqual(['real']);
        await expect(collect(backend.list('self'))).rejects.toThrow(/symbolic link/);
        // A write replaces the link, never the file it points at.
        await backend.put('out', Buffer.from('mine'));
        expect(readFileSync(join(outside, 'secret'), 'utf8')).toBe('secret');
        expect(readFileSync(join(root, 'out'), 'utf8')).toBe('mine');
      } finally {
        rmSync(outside, { recursive: true, force: true });
      }
    });
  });

  /** Listings are walked a page at a time: these pin order, content and what a walk left early leaves. */
  describe.skipIf(!fs)('walks', () => {
    let root: string;
    let backend: LocalBackend;
    beforeEach(() => {
      root = mkdtempSync(join(tmpdir(), 'yunji-walk-'));
      backend = new LocalBackend(root);
    });
    afterEach(() => rmSync(root, { recursive: true, force: true }));
    const listAll = async (prefix: string, emptyDirs = false) => {
      const out: { key: string; size: number; mtimeMs: number; emptyDir?: boolean }[] = [];
      for await (const e of backend.list(prefix, { emptyDirs })) out.push(e);
      return out;
    };
    const utf8Order = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

    it('lists a tree of several pages in byte order, each file with its size and time, empty folders when asked', async () => {
      const expected: { key: string; size: number }[] = [];
      // Names chosen so that UTF-16 order, byte order and `name/` against `name.x` all matter.
      const folders = ['a', 'a.b', 'a-', 'b/c/d', 'é', '\u{1F600}', '\uFFFA', 'z'];
      let n = 0;
      for (const f of folders) {
        mkdirSync(join(root, 't', f), { recursive: true });
        for (let i = 0; i < 400; i++) {
          const name = `${f}/${i % 3 === 0 ? 'F' : 'f'}${i}`;
          writeFileSync(join(root, 't', name), Buffer.alloc(n % 50));
          expected.push({ key: `t/${name}`, size: n % 50 });
          n++;
        }
      }
      mkdirSync(join(root, 't', 'empty', 'inner'), { recursive: true });
      mkdirSync(join(root, 't', '.yunji'), { recursive: true });
      writeFileSync(join(root, 't', '.yunji', 'hidden'), 'x');
      expected.sort((a, b) => utf8Order(a.key, b.key));

      const files = await listAll('t');
      expect(files.map((e) => e.key)).toEqual(expected.map((e) => e.key));
      expect(files.map((e) => e.size)).toEqual(expected.map((e) => e.size));
      for (const e of files.slice(0, 50)) expect(e.mtimeMs).toBe(statSync(join(root, e.key)).mtimeMs);

      const withDirs = await listAll('t', true);
      expect(withDirs.filter((e) => e.emptyDir).map((e) => e.key)).toEqual(['t/empty/inner/']);
      expect(withDirs.map((e) => e.key)).toEqual([...expected.map((e) => e.key), 't/empty/inner/'].sort(utf8Order));
    });

    it('a walk left early is forgotten, and walks after it (and many at once) are whole', async () => {
      for (let i = 0; i < 3000; i++) {
        if (i % 100 === 0) mkdirSync(join(root, 'w', `d${i / 100}`), { recursive: true });
        writeFileSync(join(root, 'w', `d${Math.floor(i / 100)}`, `f${i}`), 'x');
      }
      let seen = 0;
      for await (const _ of backend.list('w')) if (++seen === 1500) break;
      const lists = await Promise.all(Array.from({ length: 5 }, () => listAll('w')));
      for (const l of lists) expect(l).toHaveLength(3000);
      expect(await listAll('missing')).toEqual([]);
    });

    it('a folder that cannot be listed ends the walk with its error, after the entries before it', async () => {
      // 17 folders of 250 bytes, made one level at a time from inside: the deepest one's path is longer
      // than PATH_MAX (4,096 bytes), so listing it fails (ENAMETOOLONG; as root, permissions cannot).
      const deep = join(root, 'deep');
      const segment = 'd'.repeat(250);
      try {
        execFileSync('sh', [
          '-c',
          `mkdir "${deep}" && cd "${deep}" && for i in $(seq 16); do mkdir ${segment} && cd ${segment}; done && mkdir ${segment}`,
        ]);
        writeFileSync(join(deep, 'a'), 'x');
        const seen: string[] = [];
        const walked = (async () => {
          for await (const e of backend.list('deep')) seen.push(e.key);
        })();
        await expect(walked).rejects.toMatchObject({
          code: 'ENAMETOOLONG',
          message: expect.stringMatching(/^ENAMETOOLONG: name too long, scandir '\//),
        });
        expect(seen).toEqual(['deep/a']);
      } finally {
        // Node's recursive rm goes by whole paths, which are too long here.
        execFileSync('rm', ['-rf', deep]);
      }
    });

    it('shows names that are not UTF-8 as Node shows them, in the order of what it shows, and goes on', async () => {
      // Bytes written through a Buffer path: a lone continuation byte, a cut-off sequence, an
      // overlong form, a surrogate's encoding, and a valid name beside them.
      const names = [
        [0x61, 0x80],
        [0x62, 0xe2, 0x82],
        [0xc0, 0xaf, 0x7a],
        [0xed, 0xa0, 0x80],
        [0xf4, 0x90, 0x80, 0x80],
        [0x61, 0xe2, 0x82, 0xac],
      ].map((b) => Buffer.from(b));
      const dir = join(root, 'n');
      mkdirSync(dir);
      for (const name of names) writeFileSync(Buffer.concat([Buffer.from(dir + '/'), name]), 'x');
      mkdirSync(join(dir, 'sub'));
      writeFileSync(join(dir, 'sub', 'ok'), 'x');
      const seen: { key: string; problem?: string }[] = [];
      for await (const e of backend.list('n')) seen.push({ key: e.key, problem: e.problem });
      const shown = names.map((b) => ({
        name: b.toString('utf8'),
        bad: !Buffer.from(b.toString('utf8')).equals(b),
        hex: b.toString('hex'),
      }));
      const expected = [
        ...shown.map((s) => ({
          key: `n/${s.name}`,
          problem: s.bad ? `the name of 'n/${s.name}' (bytes ${s.hex}) is not valid UTF-8` : undefined,
        })),
        { key: 'n/sub/ok', problem: undefined },
      ];
      expected.sort((a, b) => utf8Order(a.key, b.key));
      expect(seen).toEqual(expected);
    });
  });
});

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}
