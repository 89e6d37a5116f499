import { createHash, createHmac } from 'node:crypto';

/** SHA-256 of an empty payload, in hex (a HEAD or GET has none). */
export const EMPTY_PAYLOAD_SHA256 = createHash('sha256').digest('hex');

export interface SigningKey {
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

/**
 * An S3 key as a request path segment list: each segment percent-encoded as RFC 3986 asks
 * (everything but letters, digits and `-._~`), the slashes kept. S3 signs the path as sent, not
 * encoded twice.
 */
export function encodeKeyPath(key: string): string {
  return key
    .split('/')
    .map((segment) => encodeURIComponent(segment).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`))
    .join('/');
}

const signingKeys = new Map<string, Buffer>();

/** The day's signing key for one credential and region (HMAC chain of AWS Signature Version 4), cached. */
function signingKeyOf(key: SigningKey, day: string): Buffer {
  const id = `${key.accessKeyId}\n${key.secretAccessKey}\n${key.region}\n${day}`;
  let derived = signingKeys.get(id);
  if (!derived) {
    const hmac = (k: Buffer | string, data: string) => createHmac('sha256', k).update(data).digest();
    derived = hmac(hmac(hmac(hmac(`AWS4${key.secretAccessKey}`, day), key.region), 's3'), 'aws4_request');
    if (signingKeys.size > 100) signingKeys.clear();
    signingKeys.set(id, derived);
  }
  return derived;
}

/** What a signed request carries besides method, host and path. */
export interface Signed {
  /** SHA-256 of the body in hex; the empty body's by default. */
  payloadSha256?: string;
  /** `x-amz-*` headers to send (S3 wants every one signed), names in lower case. */
  amzHeaders?: Record<string, string>;
  now?: Date;
}

/**
 * The headers that sign a request without a query string (`method` on `host` + `path`, the path
 * already encoded) with AWS Signature Version 4 for S3: `x-amz-date`, `x-amz-content-sha256`,
 * the given `x-amz-*` headers and `authorization`.
 */
export function signedHeaders(method: string, host: string, path: string, key: SigningKey, signed: Signed = {}): Record<string, string> {
  const amzDate = (signed.now ?? new Date()).toISOString().replace(/[-:]|\.\d{3}/g, '');
  const day = amzDate.slice(0, 8);
  const payload = signed.payloadSha256 ?? EMPTY_PAYLOAD_SHA256;
  const headers: Record<string, string> = { ...signed.amzHeaders, 'x-amz-date': amzDate, 'x-amz-content-sha256': payload };
  const names = ['host', ...Object.keys(headers)].sort();
  const value = (name: string) => (name === 'host' ? host : headers[name]!.trim());
  const canonical = [method, path, '', ...names.map((n) => `${n}:${value(n)}`), '', names.join(';'), payload].join('\n');
  const scope = `${day}/${key.region}/s3/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, createHash('sha256').update(canonical).digest('hex')].join('\n');
  const signature = createHmac('sha256', signingKeyOf(key, day)).update(toSign).digest('hex');
  return {
    ...headers,
    authorization: `AWS4-HMAC-SHA256 Credential=${key.accessKeyId}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}`,
  };
}
