import { requireRole, type Actor } from '../accounts/actor.ts';
import type { Core } from '../jobs/core.ts';
import { sql, type Compilable } from 'kysely';
import { dialectOf } from '../db/dialect.ts';
import { preparedEach, type RowValues } from '../db/prepared.ts';
import type { Db } from '../db/index.ts';
import { badRequest } from '../lib/errors.ts';
import { JsonArrayBytes } from '../lib/jsonBytes.ts';
import { objectJson, objectJsonColumns, objectJsonOfPackage, ownPackage } from './objects.ts';

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
  /** The page's objects, each a `StorageObject` written by `objectJson`, as UTF-8 JSON joined by ',' (the array's elements). */
  objectsJson: Buffer;
  commonPrefixes: string[];
  isTruncated: boolean;
  nextContinuationToken: string;
}

/** Room for a page's objects at first: most objects' JSON is under 320 bytes. */
const BYTES_PER_OBJECT = 320;

/** Where the columns of an `objectJsonColumns` row are, in the arrays `preparedEach` gives. */
const PATH = 0;
const HEAD = 1;
const CREATED = 2;
const UPDATED = 3;
const jsonOfRow = (row: RowValues, at = 0) =>
  objectJson(row[at + HEAD] as string, row[at + CREATED] as number, row[at + UPDATED] as number);

/** The smallest string above every string that starts with `prefix` (code-point order = UTF-8 byte order). */
export function prefixUpperBound(prefix: string): string | undefined {
  const chars = [...prefix];
  while (chars.length > 0) {
    const cp = chars.pop()!.codePointAt(0)!;
    if (cp < 0x10ffff) return chars.join('') + String.fromCodePoint(cp + 1 === 0xd800 ? 0xe000 : cp + 1);
  }
  return undefined;
}

/** Where a page starts: the smallest path it may hold. */
interface Cursor {
  op: '>=';
  key: string;
}

/**
 * Object paths never hold control characters (paths.ts), so `path + U+0001` is the smallest
 * string above `path` that any object could have: "after this object" becomes an inclusive bound.
 */
const justAfter = (path: string) => `${path}\u0001`;
/** A folded directory `a/b/` ends with '/', and '0' is the character right after it: every path past the directory is ≥ `a/b0`. */
const pastDirectory = (commonPrefix: string) => `${commonPrefix.slice(0, -1)}0`;
const byteMax = (a: string, b: string) => (Buffer.compare(Buffer.from(a), Buffer.from(b)) >= 0 ? a : b);

// Opaque to clients. Tokens of the earlier form `{op: '>', key}` still work.
const encodeToken = (c: Cursor) => Buffer.from(JSON.stringify(c), 'utf8').toString('base64url');
function decodeToken(token: string): Cursor {
  try {
    const c = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { op?: unknown; key?: unknown };
    if (typeof c.key === 'string' && c.op === '>=') return { op: '>=', key: c.key };
    if (typeof c.key === 'string' && c.op === '>') return { op: '>=', key: justAfter(c.key) };
  } catch {
    // fall through
  }
  throw badRequest('continuationToken is not one this server issued', 'continuationToken');
}

/** A page of objects from `from` on, in byte order (`upper` excluded); compiled once, as listings are the hot read. */
const pageFrom = preparedEach((db: Db, packageId: number, from: string, limit: number) =>
  objectJsonOfPackage(db, packageId).where('o.path', '>=', from).orderBy('o.path').limit(limit),
);
const pageBetween = preparedEach((db: Db, packageId: number, from: string, upper: string, limit: number) =>
  objectJsonOfPackage(db, packageId).where('o.path', '>=', from).where('o.path', '<', upper).orderBy('o.path').limit(limit),
);
const exactly = preparedEach((db: Db, packageId: number, path: string) => objectJsonOfPackage(db, packageId).where('o.path', '=', path));

/** A step of the folded walk: the path walked to, then the object's `objectJsonColumns` when that path is an object of this level (nulls for a folded directory's first object). */
const WALKED = 0;

/**
 * The first `limit` entries at or after `from` under `prefix`, directories folded: one row per
 * directory (its first object), after which the walk jumps past the directory. One statement does
 * the whole walk (a recursive query, one index seek per entry), so a page of folded directories
 * costs one round trip, not one per directory. Only the entries that are objects of this level are
 * joined to their rows (a directory's key is null, so it costs no index probe: as a join filter it
 * would cost one); the left join also keeps SQLite from scanning the package to meet the walk.
 */
function walk(db: Db, packageId: number, from: string, upper: string | undefined, skip: number, limit: number): Compilable<unknown> {
  const pg = dialectOf(db) === 'postgres';
  const position = sql.raw(pg ? 'strpos' : 'instr');
  const nextChar = pg ? sql`chr(1)` : sql`char(1)`;
  const below = upper === undefined ? sql`` : sql`and o.path < ${upper}`;
  const rest = sql`substr(w.path, ${skip} + 1)`;
  const query = sql`
    with recursive walk(path, step) as (
      select (select o.path from objects o where o.package_id = ${packageId} and o.path >= ${from} ${below} order by o.path limit 1), 1
      union all
      select (
        select o.path from objects o
        where o.package_id = ${packageId} ${below} and o.path >= case
          when ${position}(${rest}, '/') > 0 then substr(w.path, 1, ${skip} + ${position}(${rest}, '/') - 1) || '0'
          else w.path || ${nextChar} end
        order by o.path limit 1
      ), w.step + 1
      from walk w where w.path is not null and w.step < ${limit}
    )
    select w.path as walked, ${sql.join(objectJsonColumns())}
    from walk w left join objects o on o.package_id = ${packageId} and o.path = case when ${position}(${rest}, '/') = 0 then w.path end
    where w.path is not null
    order by w.step`;
  return { compile: () => query.compile(db) };
}
// `skip` is the prefix's length in characters, as substr counts them on both databases.
const walkFrom = preparedEach((db: Db, packageId: number, from: string, skip: number, limit: number) =>
  walk(db, packageId, from, undefined, skip, limit),
);
const walkBetween = preparedEach((db: Db, packageId: number, from: string, upper: string, skip: number, limit: number) =>
  walk(db, packageId, from, upper, skip, limit),
);

/**
 * listByPath: one object by exact path, or every object under a prefix in byte order; with
 * `noRecursive`, deeper paths fold into `commonPrefixes` (like S3's delimiter `/`). Every query
 * starts at the page's cursor and reads at most the page, so a page costs the same in a package of
 * ten objects or a million.
 */
export async function listByPath(core: Core, actor: Actor, q: ListQuery): Promise<ListPage> {
  requireRole(actor, 'viewer');
  await ownPackage(core, actor, q.packageID);
  if (!q.isPrefix) {
    const objects = new JsonArrayBytes(BYTES_PER_OBJECT);
    await exactly(core.db, (row) => objects.push(jsonOfRow(row)), q.packageID, q.path);
    return { objectsJson: objects.bytes(), commonPrefixes: [], isTruncated: false, nextContinuationToken: '' };
  }
  const maxKeys = Math.min(q.maxKeys ?? MAX_KEYS, MAX_KEYS);
  const prefix = q.path;
  const upper = prefixUpperBound(prefix);
  // One lower bound, so the index range starts at the page and not at the prefix.
  const from = q.continuationToken ? byteMax(decodeToken(q.continuationToken).key, prefix) : prefix;
  // Each row becomes bytes as it arrives; the queries read one entry more than the page, to tell whether another page follows.
  const objects = new JsonArrayBytes(maxKeys * BYTES_PER_OBJECT);
  const commonPrefixes: string[] = [];
  let entries = 0;
  let next = ''; // where the next page starts, after the last entry of this one
  if (!q.noRecursive) {
    let last: string | undefined;
    const onRow = (row: RowValues) => {
      if (entries++ >= maxKeys) return;
      objects.push(jsonOfRow(row));
      last = row[PATH] as string;
    };
    if (upper === undefined) await pageFrom(core.db, onRow, q.packageID, from, maxKeys + 1);
    else await pageBetween(core.db, onRow, q.packageID, from, upper, maxKeys + 1);
    if (last !== undefined) next = justAfter(last);
  } else {
    const skip = [...prefix].length;
    const onRow = (row: RowValues) => {
      if (entries++ >= maxKeys) return;
      const walked = row[WALKED] as string;
      if (row[1 + HEAD] !== null) {
        objects.push(jsonOfRow(row, 1));
        next = justAfter(walked);
      } else {
        const commonPrefix = walked.slice(0, walked.indexOf('/', prefix.length) + 1);
        commonPrefixes.push(commonPrefix);
        next = pastDirectory(commonPrefix);
      }
    };
    if (upper === undefined) await walkFrom(core.db, onRow, q.packageID, from, skip, maxKeys + 1);
    else await walkBetween(core.db, onRow, q.packageID, from, upper, skip, maxKeys + 1);
  }
  const isTruncated = entries > maxKeys;
  return {
    objectsJson: objects.bytes(),
    commonPrefixes,
    isTruncated,
    nextContinuationToken: isTruncated ? encodeToken({ op: '>=', key: next }) : '',
  };
}
