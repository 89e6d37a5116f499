import { Type, type SchemaOptions, type Static, type TSchema } from '@sinclair/typebox';

/**
 * Schema builders for wire models. Response serialization (fast-json-stringify) has to run a
 * validator at runtime to pick an `anyOf` branch, so enums and nullable fields are expressed with
 * `enum` and `nullable` instead of unions: same contract, no validation on every response.
 */
export function StringEnum<const T extends readonly string[]>(values: T, options: SchemaOptions = {}) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

export function Nullable<T extends TSchema>(schema: T, options: SchemaOptions = {}) {
  return Type.Unsafe<Static<T> | null>({ ...schema, nullable: true, ...options });
}

/** A row id on the wire: a positive integer JavaScript holds exactly. */
export const Id = Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER });

/**
 * A bucket, package or user space name: a bucket's and a package's are segments of
 * `downloadByPath`'s `<bucket>/<package>/<path>`, so it cannot hold `/`, backslashes or control
 * characters, and is not `.` or `..`.
 */
export const StorageName = Type.String({ minLength: 1, maxLength: 255, pattern: '^(?!\\.{1,2}$)[^/\\\\\\u0000-\\u001f\\u007f]+$' });
