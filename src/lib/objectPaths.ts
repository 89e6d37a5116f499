import { badRequest } from './errors.ts';

const MAX_PATH_BYTES = 1024;

/**
 * Object paths are relative, `/`-separated UTF-8 of at most 1024 bytes, with no empty, `.` or `..`
 * segment, no backslash and no control character: they become file paths when a package is written
 * to a space, and must never escape it.
 */
export function checkObjectPath(path: string, field = 'path'): string {
  const problem = objectPathProblem(path, field);
  if (problem !== undefined) throw badRequest(problem, field);
  return path;
}

/** What is wrong with `path` as an object path (see checkObjectPath), or undefined: for callers checking many paths, without an exception each. */
export function objectPathProblem(path: string, field = 'path'): string | undefined {
  if (path.length === 0) return `${field} is empty`;
  if (Buffer.byteLength(path, 'utf8') > MAX_PATH_BYTES) return `${field} is longer than ${MAX_PATH_BYTES} bytes`;
  if (path.startsWith('/')) return `${field} must be relative (no leading '/')`;
  if (path.includes('\\')) return `${field} must use '/' as separator (no '\\\\')`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(path)) return `${field} contains a control character`;
  if (!path.isWellFormed()) return `${field} is not valid UTF-8`;
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') return `${field} has an empty, '.' or '..' segment: '${path}'`;
  }
  return undefined;
}
