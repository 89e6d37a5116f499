/**
 * The one error type core modules throw for anything a client did wrong (or could retry). Each
 * HTTP surface maps `kind` to its own status code and envelope; anything else is an internal error.
 */
export type ErrorKind =
  | 'bad_request'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'too_large'
  | 'rate_limited'
  | 'unavailable'
  /** A storage backend refused or failed (its reason is the message). */
  | 'backend_failed'
  /** A space's shard store is full. */
  | 'insufficient_storage';

export interface ErrorDetail {
  field?: string;
  message: string;
}

export class AppError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    readonly details?: ErrorDetail[],
    /** Seconds a rate-limited client should wait. */
    readonly retryAfter?: number,
  ) {
    super(message);
    this.name = 'AppError';
  }
}

export const badRequest = (message: string, field?: string) =>
  new AppError('bad_request', message, field ? [{ field, message }] : undefined);
export const unauthorized = (message = 'authentication required') => new AppError('unauthorized', message);
export const forbidden = (message: string) => new AppError('forbidden', message);
export const notFound = (what: string) => new AppError('not_found', `${what} not found`);
export const conflict = (message: string) => new AppError('conflict', message);
export const backendFailed = (message: string) => new AppError('backend_failed', message);
export const insufficientStorage = (message: string) => new AppError('insufficient_storage', message);
