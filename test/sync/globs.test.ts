import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/lib/errors.ts';
import { compileFilters, MAX_PATTERN_CHARACTERS } from '../../src/sync/filters.ts';
import { compileGlob } from '../../src/sync/glob.ts';

/** [pattern, path, matches] */
const table: [string, string, boolean][] = [
  // A pattern without `/` matches the name in any folder.
  ['*.txt', 'a.txt', true],
  ['*.txt', 'docs/c.txt', true],
  ['*.txt', 'docs/sub/e.txt', true],
  ['*.txt', 'a.txt/b', false],
  ['*.txt', 'a.txtx', false],
  ['a.txt', 'x/a.txt', true],
  ['a.txt', 'xa.txt', false],
  ['a.txt', 'a.txt', true],
  ['.txt', 'a.txt', false],
  // `*` stops at `/`; a pattern with `/` matches the whole path.
  ['docs/*', 'docs/c.txt', true],
  ['docs/*', 'docs/sub/e.txt', false],
  ['docs/*', 'x/docs/c.txt', false],
  ['docs/*', 'docs/', true],
  ['docs/*/*.txt', 'docs/sub/e.txt', true],
  ['docs/*/*.txt', 'docs/e.txt', false],
  ['docs/*/*.txt', 'docs/a/b/e.txt', false],
  // A leading `/` is the synced folder itself.
  ['/a.txt', 'a.txt', true],
  ['/a.txt', 'x/a.txt', false],
  ['/*.txt', 'a.txt', true],
  ['/*.txt', 'd/a.txt', false],
  // `**` crosses `/`; `**/` may also be no folder at all.
  ['docs/**', 'docs/c.txt', true],
  ['docs/**', 'docs/sub/x3.dat', true],
  ['docs/**', 'docs', false],
  ['docs/**', 'docs/', true],
  ['**/e.txt', 'e.txt', true],
  ['**/e.txt', 'docs/sub/e.txt', true],
  ['**/e.txt', 'docs/sub/xe.txt', false],
  ['a/**/b', 'a/b', true],
  ['a/**/b', 'a/x/b', true],
  ['a/**/b', 'a/x/y/b', true],
  ['a/**/b', 'a/xb', false],
  ['a/**b', 'a/xb', true],
  ['a/**b', 'a/x/yb', true],
  ['**.txt', 'a/b/c.txt', true],
  ['***', 'a/b', true],
  ['tmp/**', 'tmp/f.txt', true],
  ['tmp/**', 'a/tmp/f.txt', false],
  // `?` is one character but `/`; by code point.
  ['x?.dat', 'x1.dat', true],
  ['x?.dat', 'docs/sub/x3.dat', true],
  ['x?.dat', 'x.dat', false],
  ['x?.dat', 'x12.dat', false],
  ['a?b', 'a/b', false],
  ['?', '😀', true],
  ['??', '😀', false],
  ['é?', 'éa', true],
  // Sets, ranges, complements.
  ['[ab].*', 'a.txt', true],
  ['[ab].*', 'b.log', true],
  ['[ab].*', 'c.txt', false],
  ['[a-c]x', 'bx', true],
  ['[a-c]x', 'dx', false],
  ['[!a-c]x', 'dx', true],
  ['[!a-c]x', 'bx', false],
  ['[^a-c]x', 'dx', true],
  ['[^a-c]x', 'ax', false],
  ['[-a]', '-', true],
  ['[a-]', '-', true],
  ['[]]', ']', true],
  ['[]a]', 'a', true],
  ['[!]]', 'a', true],
  ['[!]]', ']', false],
  ['[\\]', '\\', true],
  ['[😀]', '😀', true],
  // A complemented set matches `/` too (as the regular expression it replaces did).
  ['a/[!x]b', 'a//b', true],
  // Everything else is itself, case-sensitive.
  ['a.b', 'axb', false],
  ['a+b', 'a+b', true],
  ['(a|b)', '(a|b)', true],
  ['(a|b)', 'a', false],
  ['$^{}', '$^{}', true],
  ['a\\b', 'a\\b', true],
  ['a]', 'a]', true],
  ['A.TXT', 'a.txt', false],
  // Empty paths and patterns made only of stars.
  ['*', '', true],
  ['*', 'a/b', true],
  ['**', 'a/b/c', true],
  ['?', '', false],
];

describe('compileGlob', () => {
  it.each(table)('%j on %j: %s', (pattern, path, expected) => {
    expect(compileGlob(pattern)(path)).toBe(expected);
  });

  it('refuses a set without its end, and a range in the wrong order, naming the field', () => {
    for (const pattern of ['a[b', '[', '[]', '[z-a]']) {
      let thrown: unknown;
      try {
        compileGlob(pattern, 'filters[0].patterns');
      } catch (err) {
        thrown = err;
      }
      expect(thrown, pattern).toBeInstanceOf(AppError);
      expect((thrown as AppError).kind).toBe('bad_request');
      expect((thrown as AppError).details?.[0]?.field).toBe('filters[0].patterns');
    }
  });

  it('matches a pattern of many stars against a long name that it does not match (the pattern a backtracking RegExp stalled on)', () => {
    const name = 'a'.repeat(200);
    expect(compileGlob(`${'*a'.repeat(20)}*b`)(name)).toBe(false);
    expect(compileGlob(`${'*a'.repeat(20)}*`)(name)).toBe(true);
    expect(compileGlob(`${'*a'.repeat(511)}*`)('a'.repeat(510))).toBe(false);
    expect(compileGlob(`**${'a**'.repeat(100)}b`)(`${'a/'.repeat(500)}c`)).toBe(false);
  });
});

describe('compileFilters', () => {
  const subject = (path: string) => ({ path, size: 1, mtimeMs: 0 });

  it('passes a file that every filter lets through (any pattern of the Include filters)', () => {
    const passes = compileFilters([
      { type: 'Include', patterns: ['*.txt'] },
      { type: 'Include', patterns: ['*.md'] },
      { type: 'Exclude', patterns: ['tmp/**', 'x*'] },
    ]);
    expect(['a.txt', 'd/b.md', 'tmp/c.txt', 'd/x.txt', 'e.log'].filter((p) => passes(subject(p)))).toEqual(['a.txt', 'd/b.md']);
  });

  it(`refuses patterns of more than ${MAX_PATTERN_CHARACTERS} characters in all`, () => {
    const pattern = 'p'.repeat(1024);
    const at = (n: number) => [{ type: 'Exclude' as const, patterns: Array.from({ length: n }, () => pattern) }];
    expect(() => compileFilters(at(MAX_PATTERN_CHARACTERS / 1024))).not.toThrow();
    expect(() => compileFilters([...at(MAX_PATTERN_CHARACTERS / 1024), { type: 'Include', patterns: ['*'] }])).toThrow(/more than 16384/);
  });
});
