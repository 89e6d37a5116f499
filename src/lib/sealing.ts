import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from './settings.ts';
import { AppError } from './errors.ts';

/**
 * Encryption at rest for secrets Yunji must be able to use again (a space's S3 secret key), as
 * opposed to secrets it only verifies (passwords, tokens: hashed). AES-256-GCM under a key derived
 * with HKDF-SHA256 from the configured secret. A sealed value is `v2.<kid>.<iv>.<tag>.<ciphertext>`
 * in base64url, where `<kid>` is a public id of the key, so values sealed with a former key are
 * opened with that key (YUNJI_SECRET_KEY_PREVIOUS) until `yunji admin reseal-secrets` renews them.
 * Values of the first format, `v1.<iv>.<tag>.<ciphertext>` (key: SHA-256 of `yunji-sealing:<secret>`),
 * stay readable. A tampered or foreign value fails to open.
 */
export interface Sealer {
  /** Seals with the current key. */
  seal(plain: string): string;
  open(sealed: string): string;
  /** Whether `sealed` is already in the current format under the current key. */
  isCurrent(sealed: string): boolean;
}

const SALT = 'yunji sealing';
const KEY_INFO = 'yunji: AES-256-GCM key for stored credentials';
const KID_INFO = 'yunji: public id of the key for stored credentials';

interface SealingKey {
  /** Public: it tells which key sealed a value, and reveals nothing of the key. */
  id: string;
  key: Buffer;
  /** The `v1` format's key. */
  v1: Buffer;
}

function sealingKey(secret: string): SealingKey {
  const derive = (info: string, length: number) => Buffer.from(hkdfSync('sha256', secret, SALT, info, length));
  return {
    id: derive(KID_INFO, 8).toString('base64url'),
    key: derive(KEY_INFO, 32),
    v1: createHash('sha256').update(`yunji-sealing:${secret}`).digest(),
  };
}

function decrypt(key: Buffer, iv: string, tag: string, body: string, aad?: string): string {
  const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
  if (aad !== undefined) decipher.setAAD(Buffer.from(aad));
  decipher.setAuthTag(Buffer.from(tag, 'base64url'));
  return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
}

const FIX = 'list the key it was sealed with in YUNJI_SECRET_KEY_PREVIOUS';

/** Seals with `current`; opens values sealed with `current` or any of `previous`. */
export function createSealer(current: string, previous: readonly string[] = []): Sealer {
  const keys = [current, ...previous].map(sealingKey);
  const now = keys[0]!;
  const byId = new Map(keys.map((k) => [k.id, k] as const).reverse());
  return {
    seal(plain) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', now.key, iv);
      cipher.setAAD(Buffer.from(`v2.${now.id}`));
      const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
      return ['v2', now.id, iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), body.toString('base64url')].join('.');
    },
    open(sealed) {
      const parts = sealed.split('.');
      if (parts[0] === 'v2' && parts.length === 5 && /^[A-Za-z0-9_-]{1,22}$/.test(parts[1]!)) {
        const [, id, iv, tag, body] = parts as [string, string, string, string, string];
        const k = byId.get(id);
        if (!k)
          throw new AppError(
            'unavailable',
            `a stored credential was sealed with key id ${id}, which is neither YUNJI_SECRET_KEY's nor one of YUNJI_SECRET_KEY_PREVIOUS; ${FIX}`,
          );
        try {
          return decrypt(k.key, iv, tag, body, `v2.${id}`);
        } catch {
          throw new Error(`a stored credential sealed with key id ${id} is corrupt: it fails its integrity check`);
        }
      }
      if (parts[0] === 'v1' && parts.length === 4) {
        const [, iv, tag, body] = parts as [string, string, string, string];
        for (const k of keys) {
          try {
            return decrypt(k.v1, iv, tag, body);
          } catch {
            // Another key, or a corrupt value: try the next.
          }
        }
        throw new AppError(
          'unavailable',
          `a stored credential (v1 format) opens with neither YUNJI_SECRET_KEY nor any of YUNJI_SECRET_KEY_PREVIOUS; ${FIX}`,
        );
      }
      throw new Error('not a sealed value');
    },
    isCurrent(sealed) {
      return sealed.startsWith(`v2.${now.id}.`);
    },
  };
}

/** The configured keys: YUNJI_SECRET_KEY or else the data dir's own key file (created, readable by this user only, on first use), and the former ones. */
export function sealerFor(config: Pick<Config, 'secretKey' | 'secretKeyPrevious' | 'dataDir'>): Sealer {
  const previous = config.secretKeyPrevious
    .split(',')
    .map((k) => k.trim())
    .filter((k) => k !== '');
  return createSealer(config.secretKey || keyFileSecret(config.dataDir), previous);
}

function keyFileSecret(dataDir: string): string {
  const file = join(dataDir, 'secret.key');
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    mkdirSync(dataDir, { recursive: true });
    const secret = randomBytes(32).toString('base64url');
    try {
      writeFileSync(file, `${secret}\n`, { mode: 0o600, flag: 'wx' });
      return secret;
    } catch {
      // Another process created it first: use theirs.
      return readFileSync(file, 'utf8').trim();
    }
  }
}
