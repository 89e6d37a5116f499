import { requireRole, type Actor } from '../accounts/actor.ts';
import type { Core } from '../core.ts';
import { badRequest } from '../errors.ts';
import type { StorageObject } from './models.ts';
import { objectsOfPackage, ownPackage, toStorageObject } from './objects.ts';

export const MAX_KEYS = 1000;

export interface ListQuery {
  packageID: number;
  path: string;
  isPrefix?: boolean;
  noRecursive?: boolean;
  maxKeys?: number;
  continuationToken?: string;
}

export interface ListPage {
  objects: StorageObject[];
  commonPrefixes: string[];
  isTruncated: boolean;
  nextContinuationToken: string;
}

/** The smallest string above every string that starts with `prefix` (code-point order = UTF-8 byte order). */
export function prefixUpperBound(prefix: string): string | undefined {
  const chars = [...prefix];
  while (chars.length > 0) {
    const cp = chars.pop()!.codePointAt(0)!;
    if (cp < 0x10ffff) return chars.join('') + String.fromCodePoint(cp + 1 === 0xd800 ? 0xe000 : cp + 1);
  }
  return undefined;
}

/** Where a page starts: after an object's path, or at the first path past a common prefix. */
interface Cursor {
  op: '>' | '>=';
  key: string;
}

// Opaque to clients.
const encodeToken = (c: Cursor) => Buffer.from(JSON.stringify(c), 'utf8').toString('base64url');
function decodeToken(token: string): Cursor {
  try {
    const c = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as Partial<Cursor>;
    if ((c.op === '>' || c.op === '>=') && typeof c.key === 'string') return { op: c.op, key: c.key };
  } catch {
    // fall through
  }
  throw badRequest('continuationToken is not one this server issued', 'continuationToken');
}

/**
 * listByPath: one object by exact path, or every object under a prefix in byte order; with
 * `noRecursive`, deeper paths fold into `commonPrefixes` (like S3's delimiter `/`). Each query
 * starts at the page's cursor and reads at most the page, so a page costs the same in a package of
 * ten objects or a million.
 */
export async function listByPath(core: Core, actor: Actor, q: ListQuery): Promise<ListPage> {
  requireRole(actor, 'viewer');
  await ownPackage(core, actor, q.packageID);
  if (!q.isPrefix) {
    const row = await objectsOfPackage(core, q.packageID).where('o.path', '=', q.path).executeTakeFirst();
    return { objects: row ? [toStorageObject(row)] : [], commonPrefixes: [], isTruncated: false, nextContinuationToken: '' };
  }
  const maxKeys = Math.min(q.maxKeys ?? MAX_KEYS, MAX_KEYS);
  const prefix = q.path;
  const upper = prefixUpperBound(prefix);
  let cursor: Cursor = q.continuationToken ? decodeToken(q.continuationToken) : { op: '>=', key: prefix };

  type Entry = { object: StorageObject; next: Cursor } | { commonPrefix: string; next: Cursor };
  const entries: Entry[] = [];
  let exhausted = false;
  while (entries.length <= maxKeys && !exhausted) {
    const want = maxKeys + 1 - entries.length;
    let query = objectsOfPackage(core, q.packageID).where('o.path', '>=', prefix).where('o.path', cursor.op, cursor.key).orderBy('o.path').limit(want);
    if (upper !== undefined) query = query.where('o.path', '<', upper);
    const rows = await query.execute();
    exhausted = rows.length < want;
    for (const row of rows) {
      const slash = q.noRecursive ? row.path.indexOf('/', prefix.length) : -1;
      if (slash >= 0) {
        // Everything under this directory is one entry; the next query jumps past it.
        const commonPrefix = row.path.slice(0, slash + 1);
        cursor = { op: '>=', key: prefixUpperBound(commonPrefix)! };
        entries.push({ commonPrefix, next: cursor });
        exhausted = false;
        break;
      }
      cursor = { op: '>', key: row.path };
      entries.push({ object: toStorageObject(row), next: cursor });
      if (entries.length > maxKeys) break;
    }
  }
  const isTruncated = entries.length > maxKeys;
  const page = entries.slice(0, maxKeys);
  const last = page[page.length - 1];
  return {
    objects: page.flatMap((e) => ('object' in e ? [e.object] : [])),
    commonPrefixes: page.flatMap((e) => ('commonPrefix' in e ? [e.commonPrefix] : [])),
    isTruncated,
    nextContinuationToken: isTruncated && last ? encodeToken(last.next) : '',
  };
}
