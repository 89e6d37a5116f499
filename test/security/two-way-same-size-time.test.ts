import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { client, login, startServer, type RunningServer } from '../helpers/server.ts';
import { filesUnder, type Api } from '../helpers/sync.ts';

/**
 * Workspace sync never takes two files for the same because their sizes and times agree: only
 * content says the two sides are alike. Two different 10-byte edits of a synced file, one on each
 * side, with modification times within the 1 ms tolerance: a two-way run keeps both versions (a
 * conflict), and force-push makes the cloud equal to local.
 */
const kinds = await databaseKinds();
const APP = 'same-size-time';
const CONFLICT = /\.conflict-\d{8}T\d{6}Z/;

/** Writes `content` at `path` under `dir` with the modification time `mtimeMs` (fractions of a millisecond kept). */
function writeAt(dir: string, path: string, content: string, mtimeMs: number): void {
  const full = join(dir, path);
  mkdirSync(dirname(full), { recursive: true });
  writeFileSync(full, content);
  utimesSync(full, mtimeMs / 1000, mtimeMs / 1000);
}

/** A side's files as path → text (conflict copies' times shown as `*`), Yunji's own folders left out. */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of filesUnder(dir).filter((p) => !p.split('/').includes('.yunji')))
    out[f.replace(CONFLICT, '.conflict-*')] = readFileSync(join(dir, f), 'utf8');
  return out;
}

describe.each(kinds)('two-way sync does not trust equal size and time on %s', (kind) => {
  let server: RunningServer;
  let roots: string;
  let admin: Api;
  let spaces = 0;

  const localSpace = async (name: string) => {
    const root = join(roots, `${name}-${++spaces}`);
    mkdirSync(root, { recursive: true });
    const res = await admin.post('/v1/userSpace/create', { name: `${name}-${spaces}`, storage: { type: 'local', root }, shardStore: null });
    expect([res.status, res.body?.code], res.text).toEqual([200, 'OK']);
    return { id: res.body.data.userSpace.userSpaceID as number, root };
  };
  /** A fresh profile: local folder `l`, cloud folder `c`, each a new local space. */
  const workspace = async () => {
    const local = await localSpace('ws-local');
    const cloud = await localSpace('ws-cloud');
    const res = await admin.put('/api/sync/workspace', {
      local: { user_space_id: local.id, path: 'l' },
      cloud: { user_space_id: cloud.id, path: 'c' },
    });
    expect(res.status, res.text).toBe(200);
    return { local: join(local.root, 'l'), cloud: join(cloud.root, 'c') };
  };
  /** performSync and wait for its job to succeed; the job. */
  const sync = async (pushMode = '') => {
    const started = await admin.post('/api/sync/performSync', { app: APP, pushMode });
    expect([started.status, started.body?.code], started.text).toEqual([200, 0]);
    for (;;) {
      const info = await admin.post('/api/sync/getSyncInfo');
      expect(info.status, info.text).toBe(200);
      if (!info.body.data.syncing) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const job = (await admin.get('/api/jobs?action=workspace_sync&page_size=1')).body.items[0];
    expect(job.status, JSON.stringify(job)).toBe('succeeded');
    return job;
  };

  beforeAll(async () => {
    roots = mkdtempSync(join(tmpdir(), 'yunji-sec-twoway-'));
    server = await startServer(kind, { env: { YUNJI_LOCAL_ROOTS: roots, YUNJI_JOB_POLL: '100' } });
    admin = client(server.url, await login(server.url));
  });
  afterAll(async () => {
    await server?.dispose();
    if (roots) rmSync(roots, { recursive: true, force: true });
  });

  it('keeps both versions when both sides changed to different bytes of the same size and time', async () => {
    const { local, cloud } = await workspace();
    const t0 = Date.parse('2022-03-01T00:00:00.000Z');
    writeAt(local, 'notes.txt', 'original!!', t0);
    await sync();
    expect(tree(cloud)).toEqual({ 'notes.txt': 'original!!' });

    // Two different edits, 0.4 ms apart: within the tolerance for times, never the same content.
    const t1 = t0 + 60_000;
    writeAt(local, 'notes.txt', 'local-edit', t1);
    writeAt(cloud, 'notes.txt', 'cloud-edit', t1 + 0.4);
    const run = await sync();
    expect(run.result.stat).toMatch(/1 conflicts/);
    const expected = { 'notes.txt': 'local-edit', 'notes.conflict-*.txt': 'cloud-edit' };
    expect(tree(local)).toEqual(expected);
    expect(tree(cloud)).toEqual(expected);

    // A second run finds nothing to do, and both sides still hold the same files.
    const again = await sync();
    expect(again.result.stat).toMatch(/^uploaded 0, downloaded 0, deleted 0 locally and 0 in the cloud, 0 conflicts/);
    expect(tree(local)).toEqual(expected);
    expect(tree(cloud)).toEqual(expected);
  });

  it('keeps both versions on a first run (no snapshot) when the two sides differ in content only', async () => {
    const { local, cloud } = await workspace();
    const t = Date.parse('2022-04-01T00:00:00.000Z');
    writeAt(local, 'a/b.bin', '0123456789', t);
    writeAt(cloud, 'a/b.bin', '9876543210', t + 0.3);
    await sync();
    const expected = { 'a/b.bin': '0123456789', 'a/b.conflict-*.bin': '9876543210' };
    expect(tree(local)).toEqual(expected);
    expect(tree(cloud)).toEqual(expected);
    const again = await sync();
    expect(again.result.stat).toMatch(/^uploaded 0, downloaded 0, deleted 0 locally and 0 in the cloud, 0 conflicts/);
  });

  it('force-push makes the cloud equal to local when both changed to the same size and time', async () => {
    const { local, cloud } = await workspace();
    const t0 = Date.parse('2022-05-01T00:00:00.000Z');
    writeAt(local, 'doc.txt', 'version-1!', t0);
    writeAt(local, 'same.txt', 'unchanged!', t0);
    await sync();
    const t1 = t0 + 60_000;
    writeAt(local, 'doc.txt', 'local-edit', t1);
    writeAt(cloud, 'doc.txt', 'cloud-edit', t1 + 0.4);
    await sync('force-push');
    expect(tree(cloud)).toEqual({ 'doc.txt': 'local-edit', 'same.txt': 'unchanged!' });
    // And the snapshot it left lets a two-way run see the sides as equal.
    const next = await sync();
    expect(next.result.stat).toMatch(/^uploaded 0, downloaded 0, deleted 0 locally and 0 in the cloud, 0 conflicts/);
    expect(tree(local)).toEqual(tree(cloud));
  });

  it('force-pull makes local equal to the cloud when both changed to the same size and time', async () => {
    const { local, cloud } = await workspace();
    const t0 = Date.parse('2022-06-01T00:00:00.000Z');
    writeAt(local, 'doc.txt', 'version-1!', t0);
    await sync();
    const t1 = t0 + 60_000;
    writeAt(local, 'doc.txt', 'local-edit', t1);
    writeAt(cloud, 'doc.txt', 'cloud-edit', t1 + 0.4);
    await sync('force-pull');
    expect(tree(local)).toEqual({ 'doc.txt': 'cloud-edit' });
  });
});
