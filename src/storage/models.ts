import { Type, type Static } from '@sinclair/typebox';
import { Id } from '../lib/schema.ts';

/**
 * Storage models as the storage spec (004) spells them on the wire: camelCase, integer ids, times
 * ISO-8601 with offset. They are the core's types and the `/v1` surface's at once.
 */

export const Bucket = Type.Object({ bucketID: Id, name: Type.String() }, { title: 'Bucket' });
export type Bucket = Static<typeof Bucket>;

export const Package = Type.Object(
  { packageID: Id, name: Type.String(), bucketID: Id, createTime: Type.String({ format: 'date-time' }) },
  { title: 'Package' },
);
export type Package = Static<typeof Package>;

export const StorageObject = Type.Object(
  {
    objectID: Id,
    packageID: Id,
    path: Type.String(),
    size: Type.String({ description: 'Bytes, as a decimal string.' }),
    fileHash: Type.String({ description: '`Full` + upper-case hex SHA-256 of the content.' }),
    redundancy: Type.Object({ type: Type.String() }),
    createTime: Type.String({ format: 'date-time' }),
    updateTime: Type.String({ format: 'date-time' }),
  },
  { title: 'Object' },
);
export type StorageObject = Static<typeof StorageObject>;
