import { Type, type Static } from '@sinclair/typebox';
import { StringEnum, Nullable, Id, StorageName } from '../lib/schema.ts';

/**
 * User space models as the storage spec (004 §4) spells them. `storage` and `credential` depend on
 * `type`: the request schemas only fix `type`, and spaces.ts checks the rest against the schema of
 * that type, so an error names the field of the type the client meant.
 */
export const S3_TYPES = ['S3', 'OBS', 'OSS', 'COS', 'MinIO'] as const;
export const STORAGE_TYPES = ['local', ...S3_TYPES] as const;
export type StorageType = (typeof STORAGE_TYPES)[number];

export const LocalStorage = Type.Object(
  {
    type: Type.Literal('local'),
    root: Type.String({ minLength: 1, maxLength: 4096, description: 'Absolute directory, inside one of YUNJI_LOCAL_ROOTS.' }),
  },
  { additionalProperties: false },
);
export type LocalStorage = Static<typeof LocalStorage>;

export const S3Storage = Type.Object(
  {
    type: StringEnum(S3_TYPES),
    endpoint: Type.Optional(Type.String({ maxLength: 2048, description: 'http(s) URL of the service; empty: AWS S3.' })),
    region: Type.Optional(Type.String({ maxLength: 64 })),
    bucket: Type.String({ minLength: 3, maxLength: 63 }),
    projectID: Type.Optional(Type.String({ maxLength: 256, description: 'Kept for OBS configurations; not used by the S3 protocol.' })),
    forcePathStyle: Type.Optional(
      Type.Boolean({ description: 'Address the bucket in the path, not the host name (default: true for MinIO, false otherwise).' }),
    ),
  },
  { additionalProperties: false },
);
export type S3Storage = Static<typeof S3Storage>;
export type StorageConfig = LocalStorage | S3Storage;

export const S3Credential = Type.Object(
  {
    type: StringEnum(S3_TYPES),
    accessKeyId: Type.String({ minLength: 1, maxLength: 256 }),
    secretAccessKey: Type.String({ minLength: 1, maxLength: 1024 }),
  },
  { additionalProperties: false },
);
export type S3Credential = Static<typeof S3Credential>;

/** What requests carry: the type, and whatever that type needs (checked in spaces.ts). */
export const StorageInput = Type.Object({ type: StringEnum(STORAGE_TYPES) }, { additionalProperties: true });
export const CredentialInput = Nullable(Type.Object({ type: StringEnum(STORAGE_TYPES) }, { additionalProperties: true }));

export const ShardStoreConfig = Nullable(
  Type.Object(
    {
      maxSize: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'Bytes the shard store may hold; 0: no limit.' }),
    },
    { additionalProperties: false },
  ),
  { description: 'null: the space keeps no object bytes (it can still import and export packages).' },
);

export const Features = Type.Array(Type.Object({ type: Type.String({ minLength: 1, maxLength: 64 }) }, { additionalProperties: true }), {
  maxItems: 32,
  description: 'Stored and returned as given.',
});

export const WorkingDir = Type.String({
  maxLength: 1024,
  description: "Folder inside the space for Yunji's data (the shard store is `<workingDir>/.yunji/`).",
});

export const UserSpace = Type.Object(
  {
    userSpaceID: Id,
    name: Type.String(),
    storage: Type.Object({ type: Type.String() }, { additionalProperties: true }),
    credential: Nullable(Type.Object({ type: Type.String() }, { additionalProperties: true }), { description: 'Secrets are masked.' }),
    shardStore: ShardStoreConfig,
    features: Type.Array(Type.Object({ type: Type.String() }, { additionalProperties: true })),
    workingDir: Type.String(),
    revision: Type.Integer(),
  },
  { title: 'UserSpace' },
);
export type UserSpace = Static<typeof UserSpace>;

export const CreateUserSpaceBody = Type.Object(
  {
    name: StorageName,
    storage: StorageInput,
    credential: Type.Optional(CredentialInput),
    shardStore: Type.Optional(ShardStoreConfig),
    features: Type.Optional(Features),
    workingDir: Type.Optional(WorkingDir),
    userID: Type.Optional(Id),
  },
  { additionalProperties: false },
);
export type CreateUserSpaceBody = Static<typeof CreateUserSpaceBody>;

export const UpdateUserSpaceBody = Type.Object(
  {
    userSpaceID: Id,
    name: Type.Optional(StorageName),
    credential: Type.Optional(CredentialInput),
    shardStore: Type.Optional(ShardStoreConfig),
    features: Type.Optional(Features),
    userID: Type.Optional(Id),
  },
  { additionalProperties: false },
);
export type UpdateUserSpaceBody = Static<typeof UpdateUserSpaceBody>;

export const TestUserSpaceBody = Type.Object(
  { storage: StorageInput, credential: Type.Optional(CredentialInput), workingDir: Type.Optional(WorkingDir), userID: Type.Optional(Id) },
  { additionalProperties: false },
);
export type TestUserSpaceBody = Static<typeof TestUserSpaceBody>;
