import { badRequest } from '../lib/errors.ts';
import { compileGlob } from './glob.ts';
import type { SyncFilter } from './models.ts';

/** What a filter sees of a file: its path relative to the synced folder, its size and time. */
export interface FilterSubject {
  path: string;
  size: number;
  mtimeMs: number;
}

/**
 * Most characters all of a sync's patterns may have together: each file is tested against every
 * pattern, in time (path length × pattern length), so this bounds the work per file.
 */
export const MAX_PATTERN_CHARACTERS = 16_384;

function timeOf(iso: string, field: string): number {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) throw badRequest(`${field} is not an ISO-8601 time`, field);
  return ms;
}

/** One predicate for all of a sync's filters: a file passes when every filter lets it through (any pattern of the Include filters). */
export function compileFilters(filters: SyncFilter[]): (f: FilterSubject) => boolean {
  const total = filters.reduce(
    (n, f) => n + (f.type === 'Include' || f.type === 'Exclude' ? f.patterns.reduce((m, p) => m + p.length, 0) : 0),
    0,
  );
  if (total > MAX_PATTERN_CHARACTERS)
    throw badRequest(`the filters' patterns have ${total} characters in all, more than ${MAX_PATTERN_CHARACTERS}`, 'filters');
  const tests: ((f: FilterSubject) => boolean)[] = [];
  const includes: ((path: string) => boolean)[] = [];
  filters.forEach((filter, i) => {
    const field = `filters[${i}]`;
    switch (filter.type) {
      case 'Size': {
        const min = filter.minSize ?? 0;
        const max = filter.maxSize ?? Number.MAX_SAFE_INTEGER;
        if (min > max) throw badRequest(`${field}: minSize ${min} is larger than maxSize ${max}`, field);
        tests.push((f) => f.size >= min && f.size <= max);
        break;
      }
      case 'Include':
        includes.push(...filter.patterns.map((p) => compileGlob(p, `${field}.patterns`)));
        break;
      case 'Exclude': {
        const globs = filter.patterns.map((p) => compileGlob(p, `${field}.patterns`));
        tests.push((f) => !globs.some((matches) => matches(f.path)));
        break;
      }
      case 'ModTime': {
        const newer = filter.newerThan === undefined ? -Infinity : timeOf(filter.newerThan, `${field}.newerThan`);
        const older = filter.olderThan === undefined ? Infinity : timeOf(filter.olderThan, `${field}.olderThan`);
        tests.push((f) => f.mtimeMs > newer && f.mtimeMs < older);
        break;
      }
    }
  });
  if (includes.length > 0) tests.push((f) => includes.some((matches) => matches(f.path)));
  return (f) => tests.every((t) => t(f));
}
