import type BetterSqlite3 from 'better-sqlite3';
import type {
  KyselyPlugin,
  OperationNode,
  PluginTransformQueryArgs,
  PluginTransformResultArgs,
  QueryResult,
  RootOperationNode,
  UnknownRow,
} from 'kysely';

/**
 * Tells in-process caches that tables were written: before each insert/update/delete runs and again
 * after it ran. Writes made by other processes are not seen here; caches bound that with a TTL.
 */
export type WriteListener = (tables: readonly string[]) => void;

function tableName(node: OperationNode | undefined): string | undefined {
  if (!node) return undefined;
  const n = node as { kind: string; node?: OperationNode; table?: { identifier?: { name?: string } } };
  if (n.kind === 'AliasNode') return tableName(n.node);
  if (n.kind === 'TableNode') return n.table?.identifier?.name;
  return undefined;
}

function writtenTables(node: RootOperationNode): string[] {
  const n = node as { kind: string; into?: OperationNode; table?: OperationNode; from?: { froms?: OperationNode[] } };
  const nodes =
    n.kind === 'InsertQueryNode'
      ? [n.into]
      : n.kind === 'UpdateQueryNode'
        ? [n.table]
        : n.kind === 'DeleteQueryNode'
          ? (n.from?.froms ?? [])
          : [];
  return nodes.map(tableName).filter((t): t is string => t !== undefined);
}

export class WriteWatcher implements KyselyPlugin {
  readonly #listeners = new Set<WriteListener>();
  readonly #pending = new WeakMap<object, string[]>();

  listen(listener: WriteListener): void {
    this.#listeners.add(listener);
  }

  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    const tables = writtenTables(args.node);
    if (tables.length > 0) {
      this.#pending.set(args.queryId, tables);
      for (const l of this.#listeners) l(tables);
    }
    return args.node;
  }

  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    const tables = this.#pending.get(args.queryId);
    if (tables) for (const l of this.#listeners) l(tables);
    return args.result;
  }
}

interface Observed {
  watcher: WriteWatcher;
  /** SQLite's single writer connection: whether a transaction is open on it right now. */
  writer?: BetterSqlite3.Database;
}

const observed = new WeakMap<object, Observed>();

export function observeDatabase(db: object, watcher: WriteWatcher, writer?: BetterSqlite3.Database): void {
  observed.set(db, { watcher, writer });
}

export function onWrite(db: object, listener: WriteListener): void {
  observed.get(db)?.watcher.listen(listener);
}

/**
 * Whether a write may be under way that readers cannot see yet: true while SQLite's writer has a
 * transaction open; always true on databases where that cannot be observed.
 */
export function uncommittedWritesPossible(db: object): boolean {
  const writer = observed.get(db)?.writer;
  return writer ? writer.inTransaction : true;
}
