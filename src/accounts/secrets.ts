import { createHash, randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/** OWASP's first scrypt setting (N=2^17, r=8, p=1); docs/SECURITY.md gives its cost. */
const SCRYPT = { N: 131072, r: 8, p: 1, keyLength: 32, saltLength: 16 };

interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

// OpenSSL's count of scrypt's working memory; Node refuses anything above `maxmem` (32 MiB by default).
const scryptMemory = ({ N, r, p }: ScryptParams) => 128 * r * (N + p + 2);
const CURRENT_MEMORY = scryptMemory(SCRYPT);
const CURRENT_WORK = SCRYPT.N * SCRYPT.r * SCRYPT.p;

// Each hash holds 128 MiB on a libuv thread for most of a second; a few at a time keep a flood of
// logins from taking the process's memory or the thread pool that file I/O shares.
const HASHES_AT_ONCE = 2;
let hashing = 0;
const waiting: (() => void)[] = [];

async function inTurn<T>(work: () => Promise<T>): Promise<T> {
  if (hashing < HASHES_AT_ONCE) hashing++;
  else await new Promise<void>((resolve) => waiting.push(resolve));
  try {
    return await work();
  } finally {
    const next = waiting.shift();
    if (next) next();
    else hashing--;
  }
}

function scryptAsync(password: string, salt: Buffer, keyLength: number, params: ScryptParams): Promise<Buffer> {
  const options: ScryptOptions = { ...params, maxmem: scryptMemory(params) };
  return inTurn(
    () =>
      new Promise((resolve, reject) => {
        scrypt(password, salt, keyLength, options, (err, key) => (err ? reject(err) : resolve(key)));
      }),
  );
}

/** `scrypt$N$r$p$salt$hash` (base64url); async so logins never block the event loop. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SCRYPT.saltLength);
  const { N, r, p, keyLength } = SCRYPT;
  const key = await scryptAsync(password, salt, keyLength, { N, r, p });
  return ['scrypt', N, r, p, salt.toString('base64url'), key.toString('base64url')].join('$');
}

interface StoredHash {
  params: ScryptParams;
  salt: Buffer;
  hash: Buffer;
}

/** A stored hash of ours, no costlier than the current parameters; anything else is undefined. */
function parseHash(stored: string): StoredHash | undefined {
  const [scheme, n, r, p, salt, hash, ...rest] = stored.split('$');
  const params = { N: Number(n), r: Number(r), p: Number(p) };
  const sane =
    scheme === 'scrypt' &&
    rest.length === 0 &&
    Number.isSafeInteger(params.N) &&
    params.N > 1 &&
    (params.N & (params.N - 1)) === 0 &&
    Number.isSafeInteger(params.r) &&
    params.r >= 1 &&
    Number.isSafeInteger(params.p) &&
    params.p >= 1 &&
    params.N * params.r * params.p <= CURRENT_WORK &&
    scryptMemory(params) <= CURRENT_MEMORY &&
    !!salt &&
    !!hash;
  if (!sane) return undefined;
  const key = Buffer.from(hash, 'base64url');
  return key.length >= 16 ? { params, salt: Buffer.from(salt, 'base64url'), hash: key } : undefined;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parsed = parseHash(stored);
  if (!parsed) return false;
  const key = await scryptAsync(password, parsed.salt, parsed.hash.length, parsed.params);
  return timingSafeEqual(key, parsed.hash);
}

/** Whether a hash that just verified was made with weaker parameters than today's (then rehash it). */
export function isWeakerThanCurrent(stored: string): boolean {
  const params = parseHash(stored)?.params;
  return !params || params.N !== SCRYPT.N || params.r !== SCRYPT.r || params.p !== SCRYPT.p;
}

/**
 * Verified when the account is unknown (or has no password yet), so that costs as much as a wrong
 * password. Random bytes in the hash's format at today's parameters: no password matches it, and
 * nothing is computed to make it.
 */
export const DECOY_PASSWORD_HASH = [
  'scrypt',
  SCRYPT.N,
  SCRYPT.r,
  SCRYPT.p,
  randomBytes(SCRYPT.saltLength).toString('base64url'),
  randomBytes(SCRYPT.keyLength).toString('base64url'),
].join('$');

export const TOKEN_PREFIX = { session: 'ys_', apiKey: 'yk_', invitation: 'yi_' } as const;

/** 32 random bytes, URL-safe, with a prefix that says what the token is. */
export function newToken(prefix: string): string {
  return prefix + randomBytes(32).toString('base64url');
}

/** Tokens are stored only as this digest. */
export function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** A random URL-safe identifier (tenant project keys). */
export function randomKey(bytes = 15): string {
  return randomBytes(bytes).toString('base64url');
}
