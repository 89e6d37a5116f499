import type { TSchema } from '@sinclair/typebox';
import { badRequest } from '../lib/errors.ts';
import { schemaProblem } from '../lib/validation.ts';
import type { Backend } from '../backends/backend.ts';
import { LocalBackend } from '../backends/localBackend.ts';
import { LocalStorage, S3_TYPES, S3Credential, S3Storage, type StorageConfig } from './models.ts';
import { LazyS3Backend } from '../backends/lazyS3Backend.ts';
import { keptTimesLocation } from '../backends/keptTimes.ts';
import { keptTimesIn } from './s3ObjectTimes.ts';
import type { Db } from '../db/index.ts';
import type { Config } from '../lib/settings.ts';
import { outboundPolicy } from '../lib/outbound.ts';
import type { S3Network } from '../backends/s3Location.ts';

/**
 * A request's `storage` and `credential`, checked against the schema of their `type`, and the
 * backend they open. S3, OBS, OSS, COS and MinIO all speak the S3 protocol; they differ only in
 * their endpoint and whether the bucket goes in the host name or the path.
 */
export const isS3 = (storage: StorageConfig): storage is S3Storage => (S3_TYPES as readonly string[]).includes(storage.type);

function checked<T>(schema: TSchema, value: unknown, field: string): T {
  const problem = schemaProblem(schema, value);
  if (problem) throw badRequest(`${field} (type '${(value as { type?: string }).type}'): ${problem}`, field);
  return value as T;
}

export function checkStorage(input: unknown): StorageConfig {
  const type = (input as { type?: string }).type;
  if (type === 'local') return checked<StorageConfig>(LocalStorage, input, 'storage');
  const storage = checked<S3Storage>(S3Storage, input, 'storage');
  if (storage.endpoint) {
    let url: URL;
    try {
      url = new URL(storage.endpoint);
    } catch {
      throw badRequest(`storage.endpoint is not a URL: '${storage.endpoint}'`, 'storage.endpoint');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw badRequest('storage.endpoint must be an http:// or https:// URL', 'storage.endpoint');
    if (url.username || url.password) throw badRequest('storage.endpoint may not hold credentials (use credential)', 'storage.endpoint');
  }
  return storage;
}

export function checkCredential(storage: StorageConfig, input: unknown): S3Credential | null {
  if (!isS3(storage)) {
    if (input === undefined || input === null || (input as { type?: string }).type === 'local') return null;
    throw badRequest(`credential of type '${(input as { type?: string }).type}' does not fit a local space (send null)`, 'credential');
  }
  if (input === undefined || input === null) throw badRequest(`credential is required for a space of type '${storage.type}'`, 'credential');
  const credential = checked<S3Credential>(S3Credential, input, 'credential');
  if (credential.type !== storage.type)
    throw badRequest(`credential.type '${credential.type}' does not match storage.type '${storage.type}'`, 'credential.type');
  return credential;
}

/** How tenants' S3 endpoints are reached under these settings (`YUNJI_OUTBOUND_ALLOW`, `YUNJI_S3_TIMEOUT`). */
export function s3Network(config: Pick<Config, 'outboundAllow' | 's3Timeout'>): S3Network {
  return { outbound: outboundPolicy(config.outboundAllow), timeoutMs: config.s3Timeout * 1000 };
}

/**
 * The backend of a space; an S3 one connects only where `network.outbound` allows (src/lib/outbound.ts)
 * and gives up on an endpoint silent for `network.timeoutMs`. With `db`, an S3 backend records the
 * file times of what it writes there (see keptTimes.ts).
 */
export function openBackend(storage: StorageConfig, credential: S3Credential | null, network: S3Network, db?: Db): Backend {
  if (!isS3(storage)) return new LocalBackend(storage.root);
  const endpoint = storage.endpoint ?? '';
  const times = db ? keptTimesIn(db, keptTimesLocation(endpoint, storage.bucket)) : undefined;
  return new LazyS3Backend(
    {
      endpoint,
      region: storage.region ?? '',
      bucket: storage.bucket,
      forcePathStyle: storage.forcePathStyle ?? storage.type === 'MinIO',
      accessKeyId: credential?.accessKeyId ?? '',
      secretAccessKey: credential?.secretAccessKey ?? '',
    },
    network,
    times,
  );
}

/** What responses show of a credential: everything but the secret. */
export function maskCredential(
  credential: S3Credential | null,
): (Omit<S3Credential, 'secretAccessKey'> & { secretAccessKey: string }) | null {
  return credential ? { ...credential, secretAccessKey: '********' } : null;
}
