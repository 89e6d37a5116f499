import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from './config.ts';

/**
 * Encryption at rest for secrets Yunji must be able to use again (a space's S3 secret key), as
 * opposed to secrets it only verifies (passwords, tokens: hashed). AES-256-GCM; a sealed value is
 * `v1.<iv>.<tag>.<ciphertext>` in base64url, so a tampered or foreign value fails to open.
 */
export interface Sealer {
  seal(plain: string): string;
  open(sealed: string): string;
}

const VERSION = 'v1';

export function createSealer(secret: string): Sealer {
  // The configured secret may be any long string; the cipher key is its SHA-256.
  const key = createHash('sha256').update(`yunji-sealing:${secret}`).digest();
  return {
    seal(plain) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
      return [VERSION, iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), body.toString('base64url')].join('.');
    },
    open(sealed) {
      const [version, iv, tag, body] = sealed.split('.');
      if (version !== VERSION || iv === undefined || tag === undefined || body === undefined) throw new Error('not a sealed value');
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
    },
  };
}

/** The configured key, or the data dir's own key file (created, readable by this user only, on first use). */
export function sealerFor(config: Pick<Config, 'secretKey' | 'dataDir'>): Sealer {
  if (config.secretKey) return createSealer(config.secretKey);
  const file = join(config.dataDir, 'secret.key');
  let secret: string;
  try {
    secret = readFileSync(file, 'utf8').trim();
  } catch {
    mkdirSync(config.dataDir, { recursive: true });
    secret = randomBytes(32).toString('base64url');
    try {
      writeFileSync(file, `${secret}\n`, { mode: 0o600, flag: 'wx' });
    } catch {
      // Another process created it first: use theirs.
      secret = readFileSync(file, 'utf8').trim();
    }
  }
  return createSealer(secret);
}
