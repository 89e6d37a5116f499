import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/backends/backend.ts';
import { LocalBackend } from '../../src/backends/localBackend.ts';
import { dropStaleClaims, shardGuard } from '../../src/spaces/shardGuard.ts';
import { ShardStore, unlimited } from '../../src/backends/shardStore.ts';
import { shardInUse } from '../../src/storage/spaceUse.ts';
import { databaseKinds } from '../helpers/databases.ts';
import { openTestRuntime } from '../helpers/runtime.ts';

/**
 * The handshake between a sweep and a write that finds its content stored (src/spaces/shardGuard.ts),
 * on a local directory: the sweep's removal is held at the backend so the write lands inside it.
 */
const kinds = await databaseKinds();
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex').toUpperCase();
const HOUR_AGO = new Date(Date.now() - 3_600_000);

/** `backend` whose first removal of a shard waits until `release` (`removing` resolves when it is asked for). */
function holdingRemovals(backend: LocalBackend) {
  let arrived!: () => void;
  let release!: () => void;
  const removing = new Promise<void>((r) => (arrived = r));
  const released = new Promise<void>((r) => (release = r));
  const held = Object.create(backend) as Backend;
  held.remove = async (key) => {
    if (key.includes('/shards/')) {
      arrived();
      await released;
    }
    return backend.remove(key);
  };
  return { backend: held, removing, release };
}

describe.each(kinds)('the sweep and a write of stored content on %s', (kind) => {
  let rt: Awaited<ReturnType<typeof openTestRuntime>>;
  let root: string;
  let spaceId = 0;
  beforeAll(async () => {
    rt = await openTestRuntime(kind);
  });
  afterAll(async () => {
    await rt?.dispose();
  });
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'yunji-guard-'));
    spaceId++;
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const inUse = (hash: string) => shardInUse(rt.core, spaceId, hash);
  const shardFile = (hash: string) => join(root, '.yunji', 'shards', hash.slice(0, 2), hash);

  it.each([
    ['small, put at its name', 4 * 1024],
    ['large, moved into place', 400 * 1024],
  ])('a write that lands while a sweep removes the shard it found leaves the shard whole (%s)', async (_what, size) => {
    const held = holdingRemovals(new LocalBackend(root));
    const guard = shardGuard(rt.core, spaceId);
    let pinning!: () => void;
    const pinned = new Promise<void>((r) => (pinning = r));
    const store = new ShardStore(held.backend, '', unlimited, { ...guard, pin: (hash) => (pinning(), guard.pin(hash)) });
    const content = randomBytes(size);
    const { hash } = await store.write(Readable.from([content]));
    utimesSync(shardFile(hash), HOUR_AGO, HOUR_AGO);
    const sweep = store.removeIfUnused(hash, Date.now() - 1000, inUse);
    // The sweep found the shard old and unused and is removing it; the same content arrives meanwhile.
    await held.removing;
    const write = store.write(Readable.from([content]));
    // The removal lands once the write has found the shard stored (and pinned it) or, without a pin, has ended.
    await Promise.race([pinned, write]);
    held.release();
    const [, written] = await Promise.all([sweep, write]);
    expect(written.hash).toBe(hash);
    expect(sha(readFileSync(shardFile(hash)))).toBe(sha(content));
  });

  it('a pinned shard stays until a sweep cutoff passes its pin', async () => {
    const store = new ShardStore(new LocalBackend(root), '', unlimited, shardGuard(rt.core, spaceId));
    const content = randomBytes(1024);
    const { hash } = await store.write(Readable.from([content]));
    utimesSync(shardFile(hash), HOUR_AGO, HOUR_AGO);
    // Written again: found stored, so pinned (its time, new again, made old here: only the pin keeps it).
    await store.write(Readable.from([content]));
    utimesSync(shardFile(hash), HOUR_AGO, HOUR_AGO);
    expect(await store.removeIfUnused(hash, Date.now() - 1000, inUse)).toBe(0);
    expect(existsSync(shardFile(hash))).toBe(true);
    await dropStaleClaims(rt.core, Date.now() + 1);
    expect(await store.removeIfUnused(hash, Date.now() - 1000, inUse)).toBe(content.length);
    expect(existsSync(shardFile(hash))).toBe(false);
  });

  it('one sweep at a time may mean to remove a shard; a dead sweep is not waited for', async () => {
    const guard = shardGuard(rt.core, spaceId);
    const hash = sha(randomBytes(8));
    const intent = await guard.intend(hash);
    expect(intent).toBeDefined();
    expect(await guard.intend(hash)).toBeUndefined();
    await intent!.done();
    const again = await guard.intend(hash);
    expect(again).toBeDefined();
    await again!.done();
    // An intent not renewed for YUNJI_SWEEP_FENCE is a dead sweeper's: a write does not wait for it, the next sweep drops it.
    await rt.core.db
      .insertInto('sweep_intents')
      .values({ space_id: spaceId, hash, renewed_at: Date.now() - rt.core.config.sweepFence * 1000 - 1 })
      .execute();
    await guard.pin(hash);
    await dropStaleClaims(rt.core, 0);
    expect(await rt.core.db.selectFrom('sweep_intents').select('hash').where('space_id', '=', spaceId).execute()).toEqual([]);
  });
});
