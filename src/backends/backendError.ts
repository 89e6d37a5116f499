import { AppError, backendFailed, badRequest, insufficientStorage } from '../lib/errors.ts';

/**
 * Why a backend refused or failed:
 * - `not_found`: no file at the key (or the bucket is missing);
 * - `invalid_path`: the key is not a path inside the space (it escapes it, or goes through a symbolic link);
 * - `denied`: the storage refused (credentials, permissions, Yunji's own `.yunji` folder);
 * - `unreachable`: the storage did not answer;
 * - `full`: the space's shard store has no room for the bytes;
 * - `too_large`: the bytes pass the limit they were written under;
 * - `failed`: anything else the storage reported.
 */
export type BackendErrorCode = 'not_found' | 'invalid_path' | 'denied' | 'unreachable' | 'full' | 'too_large' | 'failed';

/** A backend refused or failed; `message` is its reason, fit to show the user. */
export class BackendError extends Error {
  constructor(
    message: string,
    readonly code: BackendErrorCode = 'failed',
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'BackendError';
  }
}

/** Which bytes an operation was writing, and where, for the client's message when they do not fit. */
export interface BytesWritten {
  what: string;
  spaceId: number;
}

/**
 * A backend's failure as the error a client sees, by its code: the one place backend errors become
 * client errors. A path that is not the space's is the client's mistake (400); bytes that do not
 * fit are 413 or 507, named by `bytes`; anything else the backend reported is a backend failure.
 * Errors that are not a backend's are returned unchanged.
 */
export function asClientError(err: unknown, bytes?: BytesWritten): unknown {
  if (!(err instanceof BackendError)) return err;
  switch (err.code) {
    case 'invalid_path':
      return badRequest(err.message);
    case 'too_large':
      return new AppError('too_large', bytes ? `${bytes.what} is ${err.message}` : err.message);
    case 'full':
      return insufficientStorage(bytes ? `${bytes.what} does not fit in user space ${bytes.spaceId}: ${err.message}` : err.message);
    default:
      return backendFailed(err.message);
  }
}
