import { badRequest } from '../lib/errors.ts';

/**
 * Glob patterns over relative paths, matched without regular expressions: a pattern is compiled
 * once into a list of steps, and a path is matched by following every step it could be at, one
 * character at a time, so the work is at most (path length × pattern length) whatever the pattern.
 * (A backtracking RegExp of many `*` can take exponential time on a long name; docs/DECISIONS.md.)
 *
 * `*` any characters but `/`, `**` any characters (followed by `/`: also no folder at all), `?`
 * one character but `/`, `[…]` one character of a set (ranges `a-z`; `[!…]` or `[^…]` its
 * complement; a `]` first in the set, or right after its `!` or `^`, is one of its characters).
 * Everything else is itself; matching is by code point and case-sensitive. A pattern without `/`
 * matches the file name in any folder (as rsync and rclone do); one with `/` matches the whole
 * path, a leading `/` meaning the synced folder.
 */

const SLASH = 0x2f;

type Step =
  | { kind: 'char'; cp: number }
  | { kind: 'one' }
  | { kind: 'set'; negated: boolean; ranges: number[] }
  /** Any run of characters but `/` (stays on this step, or moves past it without a character). */
  | { kind: 'star' }
  /** Any run of characters. */
  | { kind: 'globstar' }
  /** Moves past it without a character to the next step, or to `to` (skipping an optional part). */
  | { kind: 'skip'; to: number };

function setOf(body: string, pattern: string, field: string): Step {
  let cps = Array.from(body, (c) => c.codePointAt(0)!);
  const negated = cps[0] === 0x21 /* ! */ || cps[0] === 0x5e; /* ^ */
  if (negated) cps = cps.slice(1);
  const ranges: number[] = [];
  for (let i = 0; i < cps.length; i++) {
    const lo = cps[i]!;
    // `a-z` is a range; a `-` first or last is itself.
    if (cps[i + 1] === 0x2d && i + 2 < cps.length) {
      const hi = cps[i + 2]!;
      if (hi < lo)
        throw badRequest(
          `pattern '${pattern}' has the range '${String.fromCodePoint(lo)}-${String.fromCodePoint(hi)}' in the wrong order`,
          field,
        );
      ranges.push(lo, hi);
      i += 2;
    } else ranges.push(lo, lo);
  }
  return { kind: 'set', negated, ranges };
}

function stepsOf(pattern: string, field: string): Step[] {
  const steps: Step[] = [];
  const cps = Array.from(pattern);
  for (let i = 0; i < cps.length; i++) {
    const c = cps[i]!;
    if (c === '*') {
      if (cps[i + 1] === '*') {
        i++;
        if (cps[i + 1] === '/') {
          i++;
          // `**/`: either nothing, or any characters ending with a `/`.
          steps.push({ kind: 'skip', to: steps.length + 3 }, { kind: 'globstar' }, { kind: 'char', cp: SLASH });
        } else steps.push({ kind: 'globstar' });
      } else steps.push({ kind: 'star' });
    } else if (c === '?') steps.push({ kind: 'one' });
    else if (c === '[') {
      // The set ends at the first `]` after its first character (after `!` or `^`, if it starts so).
      const first = cps[i + 1] === '!' || cps[i + 1] === '^' ? i + 2 : i + 1;
      const end = cps.indexOf(']', first + 1);
      if (end < 0) throw badRequest(`pattern '${pattern}' has a '[' without its ']'`, field);
      steps.push(setOf(cps.slice(i + 1, end).join(''), pattern, field));
      i = end;
    } else steps.push({ kind: 'char', cp: c.codePointAt(0)! });
  }
  return steps;
}

function inSet(step: { negated: boolean; ranges: number[] }, cp: number): boolean {
  let hit = false;
  for (let r = 0; r < step.ranges.length && !hit; r += 2) hit = cp >= step.ranges[r]! && cp <= step.ranges[r + 1]!;
  return hit !== step.negated;
}

// Step kinds, as numbers in a typed array: the match loop runs (path length × steps) times.
const CHAR = 0;
const ONE = 1;
const SET = 2;
const STAR = 3;
const GLOBSTAR = 4;
const SKIP = 5;
const kindCode = { char: CHAR, one: ONE, set: SET, star: STAR, globstar: GLOBSTAR, skip: SKIP } as const;

/** Compiles `pattern` into a test of relative paths; a malformed pattern is a 400 naming `field`. */
export function compileGlob(pattern: string, field = 'patterns'): (path: string) => boolean {
  let steps = stepsOf(pattern, field);
  if (pattern.includes('/')) {
    if (steps[0]?.kind === 'char' && steps[0].cp === SLASH)
      steps = steps.slice(1).map((s) => (s.kind === 'skip' ? { ...s, to: s.to - 1 } : s));
  } else {
    // The name in any folder: as if the pattern began with `**/`.
    steps = [
      { kind: 'skip', to: 3 },
      { kind: 'globstar' },
      { kind: 'char', cp: SLASH },
      ...steps.map((s) => (s.kind === 'skip' ? { ...s, to: s.to + 3 } : s)),
    ];
  }
  const end = steps.length;
  const kinds = Int32Array.from(steps, (s) => kindCode[s.kind]);
  // A character's code point, a skip's target.
  const args = Int32Array.from(steps, (s) => (s.kind === 'char' ? s.cp : s.kind === 'skip' ? s.to : 0));
  const sets = steps.map((s) => (s.kind === 'set' ? s : undefined));
  // Which steps the match may be at: `at[k]` before step k (`at[end]`: the whole pattern matched).
  const first = new Uint8Array(end + 1);
  const second = new Uint8Array(end + 1);
  // Adds the steps reachable without a character; every such move goes forward, so one pass does.
  const close = (set: Uint8Array) => {
    for (let k = 0; k < end; k++) {
      if (set[k] === 0) continue;
      const kind = kinds[k]!;
      if (kind === STAR || kind === GLOBSTAR) set[k + 1] = 1;
      else if (kind === SKIP) {
        set[k + 1] = 1;
        set[args[k]!] = 1;
      }
    }
  };
  return (path) => {
    let at = first;
    let next = second;
    at.fill(0);
    at[0] = 1;
    close(at);
    for (let i = 0; i < path.length; i++) {
      let cp = path.charCodeAt(i);
      // A surrogate pair is one character.
      if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < path.length) {
        const low = path.charCodeAt(i + 1);
        if (low >= 0xdc00 && low <= 0xdfff) {
          cp = (cp - 0xd800) * 0x400 + (low - 0xdc00) + 0x10000;
          i++;
        }
      }
      next.fill(0);
      let alive = false;
      for (let k = 0; k < end; k++) {
        if (at[k] === 0) continue;
        const kind = kinds[k]!;
        if (kind === CHAR ? args[k] === cp : kind === ONE ? cp !== SLASH : kind === SET ? inSet(sets[k]!, cp) : false) {
          next[k + 1] = 1;
          alive = true;
        } else if (kind === GLOBSTAR || (kind === STAR && cp !== SLASH)) {
          next[k] = 1;
          alive = true;
        }
      }
      if (!alive) return false;
      close(next);
      const was = at;
      at = next;
      next = was;
    }
    return at[end] === 1;
  };
}
