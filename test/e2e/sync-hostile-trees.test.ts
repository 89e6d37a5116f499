import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { client, login, startServer, type RunningServer } from '../helpers/server.ts';
import { filesUnder, waitForJob, type Api } from '../helpers/sync.ts';

const kinds = await databaseKinds();

/** Source trees a user may well have: names with newlines, names that are not UTF-8, symbolic links that loop or lead outside. */
describe.each(kinds)('sync of hostile source trees on %s', (kind) => {
  let server: RunningServer;
  let roots: string;
  let admin: Api;

  beforeAll(async () => {
    roots = mkdtempSync(join(tmpdir(), 'yunji-hostile-'));
    server = await startServer(kind, { env: { YUNJI_LOCAL_ROOTS: roots, YUNJI_JOB_POLL: '100' } });
    admin = client(server.url, await login(server.url));
  });
  afterAll(async () => {
    await server?.dispose();
    rmSync(roots, { recursive: true, force: true });
  });

  const space = async (name: string) => {
    const root = join(roots, name);
    mkdirSync(root, { recursive: true });
    const res = await admin.post('/v1/userSpace/create', { name, storage: { type: 'local', root }, shardStore: null });
    expect(res.status, res.text).toBe(200);
    return { id: res.body.data.userSpace.userSpaceID as number, root };
  };

  it('copies names with newlines, reports a name that is not UTF-8 without losing the rest, and follows no symbolic link', async () => {
    const src = await space('src');
    const dst = await space('dst');
    const tree = join(src.root, 'tree');
    mkdirSync(join(tree, 'sub'), { recursive: true });
    writeFileSync(join(tree, 'line\nbreak.txt'), 'newline in the name');
    writeFileSync(join(tree, 'plain.txt'), 'plain');
    writeFileSync(
      Buffer.concat([Buffer.from(join(tree, 'sub') + '/'), Buffer.from([0x62, 0x61, 0x64, 0xff, 0xfe, 0x2e, 0x74, 0x78, 0x74])]),
      'latin-1 name',
    );
    symlinkSync(tree, join(tree, 'sub', 'loop'));
    symlinkSync('/etc', join(tree, 'outside'));
    symlinkSync('/etc/hostname', join(tree, 'hostname-link'));

    const created = await admin.post('/v1/spaceSyncer/createTask', {
      trigger: { type: 'Once' },
      mode: { type: 'Diff', includeSize: true, includeModTime: true },
      filters: [],
      options: {},
      srcUserSpaceID: src.id,
      srcPath: 'tree',
      destUserSpaceIDs: [dst.id],
      destPathes: ['out'],
    });
    expect(created.body.code, created.text).toBe('OK');
    const jobs = await admin.get(`/api/jobs?action=space_sync`);
    const job = await waitForJob(admin, jobs.body.items[0].id);

    // The two readable files arrive; nothing through a link; the unreadable name is the one error.
    expect(filesUnder(join(dst.root, 'out'))).toEqual(['line\nbreak.txt', 'plain.txt']);
    expect(readFileSync(join(dst.root, 'out', 'line\nbreak.txt'), 'utf8')).toBe('newline in the name');
    expect(job.status).toBe('failed');
    expect(job.stats).toMatchObject({ copied: 2, failed: 1 });
    const itemErrors = job.errors.filter((e: { item?: string }) => e.item !== undefined);
    expect(itemErrors).toHaveLength(1);
    expect(itemErrors[0].message).toMatch(/not valid UTF-8/);
    expect(itemErrors[0].item).toMatch(/^sub\/bad/);
    // retry_failed is offered for it.
    expect(job.buttons.map((b: { customId: string }) => b.customId.split('::')[1])).toContain('retry_failed');
  });
});
