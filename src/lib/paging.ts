import { Type, type Static, type TSchema } from '@sinclair/typebox';

/** Page-number pagination as the platform surface spells it (PageMeta). */
export const PageQuery = Type.Object({
  page: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, default: 1 })),
  page_size: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
});
export type PageQuery = Static<typeof PageQuery>;

export const PageMeta = Type.Object(
  { page: Type.Integer(), page_size: Type.Integer(), total: Type.Integer(), total_pages: Type.Integer() },
  { title: 'PageMeta' },
);
export type PageMeta = Static<typeof PageMeta>;

export const PageOf = <T extends TSchema>(item: T, title: string) => Type.Object({ items: Type.Array(item), meta: PageMeta }, { title });

export interface Page<T> {
  items: T[];
  meta: PageMeta;
}

export function pageWindow(q: PageQuery): { page: number; pageSize: number; offset: number } {
  const page = q.page ?? 1;
  const pageSize = q.page_size ?? 50;
  return { page, pageSize, offset: (page - 1) * pageSize };
}

export function pageMeta(page: number, pageSize: number, total: number): PageMeta {
  return { page, page_size: pageSize, total, total_pages: Math.ceil(total / pageSize) };
}
