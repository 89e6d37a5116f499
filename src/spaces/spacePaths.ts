import { badRequest } from '../lib/errors.ts';
import { checkObjectPath } from '../lib/objectPaths.ts';
import { RESERVED_DIR } from '../backends/layout.ts';

/**
 * A path inside a space as a client gives it (`workingDir`, `createPackage`'s `path`,
 * `downloadPackage`'s `rootPath`): empty for the space's root, otherwise an object path's rules
 * (relative, no `..`), and never into Yunji's own `.yunji` folder. A trailing `/` is ignored.
 */
export function checkSpacePath(path: string, field: string): string {
  const trimmed = path.replace(/\/+$/, '');
  if (trimmed === '') return '';
  checkObjectPath(trimmed, field);
  if (trimmed.split('/').includes(RESERVED_DIR))
    throw badRequest(`${field} may not enter '${RESERVED_DIR}', where Yunji keeps its own data`, field);
  return trimmed;
}
