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
