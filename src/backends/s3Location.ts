import type { OutboundPolicy } from '../lib/outbound.ts';

/** Where an S3-compatible space is, and with which key (no SDK needed to hold or describe it). */
export interface S3Location {
  endpoint: string;
  region: string;
  bucket: string;
  forcePathStyle: boolean;
  accessKeyId: string;
  secretAccessKey: string;
}

/** Human-readable location for messages, without secrets. */
export function describeS3(location: S3Location): string {
  return `bucket '${location.bucket}' at ${location.endpoint || 'AWS S3'}`;
}

/** How an S3 endpoint is reached: where requests may connect, and how long it may stay silent. */
export interface S3Network {
  outbound: OutboundPolicy;
  /** Milliseconds to connect, and milliseconds without a byte in either direction during a request (`YUNJI_S3_TIMEOUT`). */
  timeoutMs: number;
}
