import { badRequest } from '../errors.ts';

const MAX_PATH_BYTES = 1024;

/**
 * Object paths are relative, `/`-separated UTF-8 of at most 1024 bytes, with no empty, `.` or `..`
 * segment, no backslash and no control character: they become file paths when a package is written
 * to a space, and must never escape it.
 */
export function checkObjectPath(path: string, field = 'path'): string {
  if (path.length === 0) throw badRequest(`${field} is empty`, field);
  if (Buffer.byteLength(path, 'utf8') > MAX_PATH_BYTES) throw badRequest(`${field} is longer than ${MAX_PATH_BYTES} bytes`, field);
  if (path.startsWith('/')) throw badRequest(`${field} must be relative (no leading '/')`, field);
  if (path.includes('\\')) throw badRequest(`${field} must use '/' as separator (no '\\\\')`, field);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(path)) throw badRequest(`${field} contains a control character`, field);
  if (!path.isWellFormed()) throw badRequest(`${field} is not valid UTF-8`, field);
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') throw badRequest(`${field} has an empty, '.' or '..' segment: '${path}'`, field);
  }
  return path;
}
