import { badRequest } from '../errors.ts';
import type { SyncFilter } from './models.ts';

/** What a filter sees of a file: its path relative to the synced folder, its size and time. */
export interface FilterSubject {
  path: string;
  size: number;
  mtimeMs: number;
}

/**
 * A glob as a regular expression over a relative path: `**` any characters, `*` any but `/`,
 * `?` one but `/`, `[…]` a set (`[!…]` its complement). A pattern without `/` matches the file
 * name in any folder (as rsync and rclone do).
 */
export function globToRegExp(pattern: string, field = 'patterns'): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') {
      if (pattern[i + 1] === '*') {
        i++;
        // `**/` also matches no folder at all.
        if (pattern[i + 1] === '/') {
          i++;
          out += '(?:.*/)?';
        } else out += '.*';
      } else out += '[^/]*';
    } else if (c === '?') out += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) throw badRequest(`pattern '${pattern}' has a '[' without its ']'`, field);
      let set = pattern.slice(i + 1, end);
      if (set.startsWith('!')) set = `^${set.slice(1)}`;
      out += `[${set.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else out += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  const anchored = pattern.includes('/') ? `^${out.replace(/^\//, '')}$` : `(?:^|/)${out}$`;
  return new RegExp(anchored, 'u');
}

function timeOf(iso: string, field: string): number {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) throw badRequest(`${field} is not an ISO-8601 time`, field);
  return ms;
}

/** One predicate for all of a sync's filters: a file passes when every filter lets it through (any pattern of the Include filters). */
export function compileFilters(filters: SyncFilter[]): (f: FilterSubject) => boolean {
  const tests: ((f: FilterSubject) => boolean)[] = [];
  const includes: RegExp[] = [];
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
        includes.push(...filter.patterns.map((p) => globToRegExp(p, `${field}.patterns`)));
        break;
      case 'Exclude': {
        const res = filter.patterns.map((p) => globToRegExp(p, `${field}.patterns`));
        tests.push((f) => !res.some((re) => re.test(f.path)));
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
  if (includes.length > 0) tests.push((f) => includes.some((re) => re.test(f.path)));
  return (f) => tests.every((t) => t(f));
}
