import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { call, newTenantClient, startServer, type RunningServer } from '../helpers/server.ts';
import { filesUnder, TERMINAL_STATUSES, until, writeTree, type Api } from '../helpers/sync.ts';

const kinds = await databaseKinds();

/**
 * A tenant's sync filter cannot stall the server: a glob of many `*` against a long file name is
 * matched in time bounded by (name length × pattern length), not by backtracking. (On a RegExp
 * compiled from the glob, this test never ends: the event loop stalls, `/healthz` never answers.)
 */
describe.each(kinds)('sync filter globs on %s', (kind) => {
  let server: RunningServer;
  let roots: string;
  let attacker: Api;

  beforeAll(async () => {
    roots = mkdtempSync(join(tmpdir(), 'yunji-redos-roots-'));
    server = await startServer(kind, { env: { YUNJI_LOCAL_ROOTS: roots, YUNJI_JOB_POLL: '100' } });
    attacker = await newTenantClient(server.url, 'Glob attacker');
  });
  afterAll(async () => {
    // A server whose event loop stalls cannot act on SIGTERM: it is killed instead.
    const kill = setTimeout(() => server?.proc.kill('SIGKILL'), 10_000);
    await server?.dispose();
    clearTimeout(kill);
    if (roots) rmSync(roots, { recursive: true, force: true });
  });

  const localSpace = async (name: string) => {
    const root = join(roots, name);
    mkdirSync(root, { recursive: true });
    const res = await attacker.post('/v1/userSpace/create', { name, storage: { type: 'local', root }, shardStore: null });
    expect(res.body?.code, res.text).toBe('OK');
    return { id: res.body.data.userSpace.userSpaceID as number, root };
  };

  it('an Exclude pattern of many stars over a 200-character name: the sync completes and /healthz answers all along', async () => {
    const src = await localSpace('src');
    const dst = await localSpace('dst');
    const long = 'a'.repeat(200);
    writeTree(join(src.root, 'in'), { [long]: 'kept', [`${long.slice(1)}b`]: 'excluded', 'short.txt': 'kept too' });
    const hostile = `${'*a'.repeat(20)}*b`;
    const created = await attacker.post('/v1/spaceSyncer/createTask', {
      trigger: { type: 'Once' },
      mode: { type: 'Full' },
      filters: [{ type: 'Exclude', patterns: [hostile] }],
      options: {},
      srcUserSpaceID: src.id,
      srcPath: 'in',
      destUserSpaceIDs: [dst.id],
      destPathes: ['out'],
    });
    expect(created.body?.code, created.text).toBe('OK');
    const reference = `spaceSyncTask:${created.body.data.task.taskID}`;

    let healthChecks = 0;
    const job = await until(
      'the filtered sync to end',
      async () => {
        const health = await call(server.url, 'GET', '/healthz');
        expect(health.status).toBe(200);
        healthChecks++;
        const jobs = await attacker.get('/api/jobs?action=space_sync');
        expect(jobs.status, jobs.text).toBe(200);
        return (jobs.body.items as any[]).find((j) => j.reference_id === reference && TERMINAL_STATUSES.includes(j.status));
      },
      50_000,
    );
    expect(job.status, JSON.stringify(job)).toBe('succeeded');
    expect(healthChecks).toBeGreaterThan(0);
    expect(filesUnder(join(dst.root, 'out'))).toEqual([long, 'short.txt']);
  });
});
