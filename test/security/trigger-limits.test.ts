import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { newTenantClient, startServer, type ApiResponse, type RunningServer } from '../helpers/server.ts';
import type { Api } from '../helpers/sync.ts';

const kinds = await databaseKinds();
const MOST = 3;

/**
 * A tenant cannot make the job engine run jobs back to back forever: interval triggers (from
 * `POST /api/jobs/triggers` and `Interval` space sync tasks) run at most once per
 * YUNJI_MIN_TRIGGER_INTERVAL (default 60 s), and a tenant has at most YUNJI_MAX_TRIGGERS_PER_TENANT
 * enabled at once; each refusal names its limit, in the envelope of its surface.
 */
describe.each(kinds)('interval trigger limits on %s', (kind) => {
  let server: RunningServer;
  let roots: string;
  let owner: Api;
  let other: Api;
  let src: number;
  let dst: number;

  beforeAll(async () => {
    roots = mkdtempSync(join(tmpdir(), 'yunji-trigger-roots-'));
    server = await startServer(kind, { env: { YUNJI_LOCAL_ROOTS: roots, YUNJI_MAX_TRIGGERS_PER_TENANT: String(MOST) } });
    owner = await newTenantClient(server.url, 'Trigger happy');
    other = await newTenantClient(server.url, 'Neighbour');
    const space = async (name: string) => {
      const root = join(roots, name);
      mkdirSync(root, { recursive: true });
      const res = await owner.post('/v1/userSpace/create', { name, storage: { type: 'local', root }, shardStore: null });
      expect(res.body?.code, res.text).toBe('OK');
      return res.body.data.userSpace.userSpaceID as number;
    };
    src = await space('src');
    dst = await space('dst');
  });
  afterAll(async () => {
    await server?.dispose();
    if (roots) rmSync(roots, { recursive: true, force: true });
  });

  const trigger = (api: Api, interval: unknown) => api.post('/api/jobs/triggers', { action: 'noop', interval });
  const task = (interval: unknown) =>
    owner.post('/v1/spaceSyncer/createTask', {
      trigger: { type: 'Interval', interval },
      mode: { type: 'Full' },
      filters: [],
      options: {},
      srcUserSpaceID: src,
      srcPath: 'in',
      destUserSpaceIDs: [dst],
      destPathes: ['out'],
    });
  const expectPlatformError = (res: ApiResponse, status: number, message: RegExp) => {
    expect(res.status, res.text).toBe(status);
    expect(res.body, res.text).toMatchObject({ code: expect.any(String), message: expect.stringMatching(message) });
  };
  const expectV1Error = (res: ApiResponse, status: number, code: string, message: RegExp) => {
    expect(res.status, res.text).toBe(status);
    expect(res.body, res.text).toEqual({ code, message: expect.stringMatching(message), data: null });
  };
  const taskIds = async () => ((await owner.get('/v1/spaceSyncer/listTasks')).body.data.tasks as { taskID: number }[]).map((t) => t.taskID);

  it('refuses an interval below the minimum on both surfaces, and takes the minimum', async () => {
    for (const interval of [1, 59]) {
      expectPlatformError(await trigger(owner, interval), 400, /interval must be at least 60 seconds/);
      expectV1Error(await task(interval), 400, 'BadArgument', /interval must be at least 60 seconds/);
    }
    expect((await owner.get('/api/jobs/triggers')).body.items).toEqual([]);
    expect(await taskIds()).toEqual([]);
    // Malformed intervals stay 400s.
    for (const interval of ['60', -60, 1.5, null, 2 ** 53]) {
      expect((await trigger(owner, interval)).status, JSON.stringify(interval)).toBe(400);
      expect((await task(interval)).status, JSON.stringify(interval)).toBe(400);
    }

    const made = await trigger(owner, 60);
    expect(made.status, made.text).toBe(201);
    expect(made.body.interval).toBe(60);
    expect((await owner.delete(`/api/jobs/triggers/${made.body.id}`)).status).toBe(204);
  });

  it(`refuses a tenant's trigger beyond ${MOST}, Interval sync tasks counted, on both surfaces; not the next tenant's`, async () => {
    const first = await trigger(owner, 3600);
    const second = await trigger(owner, 3600);
    expect([first.status, second.status]).toEqual([201, 201]);
    const created = await task(3600);
    expect(created.body?.code, created.text).toBe('OK');
    const taskID = created.body.data.task.taskID as number;

    expectPlatformError(await trigger(owner, 3600), 409, new RegExp(`the most allowed is ${MOST}`));
    const before = await taskIds();
    expectV1Error(await task(3600), 409, 'Conflict', new RegExp(`the most allowed is ${MOST}`));
    expect(await taskIds()).toEqual(before);
    expect((await owner.get('/api/jobs/triggers')).body.items).toHaveLength(MOST);

    // Another tenant has its own allowance.
    const theirs = await trigger(other, 3600);
    expect(theirs.status, theirs.text).toBe(201);

    // Deleting a trigger, or cancelling an Interval task, makes room again.
    expect((await owner.delete(`/api/jobs/triggers/${first.body.id}`)).status).toBe(204);
    const again = await trigger(owner, 3600);
    expect(again.status, again.text).toBe(201);
    expect((await owner.post('/v1/spaceSyncer/cancelTask', { taskID })).body?.code).toBe('OK');
    const replacement = await task(3600);
    expect(replacement.body?.code, replacement.text).toBe('OK');
  });

  it(`lets exactly ${MOST} of 30 parallel creations (triggers and Interval sync tasks) through; the rest are 409`, async () => {
    // The race is only around the cap; a few tenants, each a new burst, make losing it near certain.
    for (let round = 1; round <= 5; round++) {
      const racer = await newTenantClient(server.url, `Racer ${round}`);
      const space = async (name: string) => {
        const root = join(roots, `racer-${round}-${name}`);
        mkdirSync(root, { recursive: true });
        const res = await racer.post('/v1/userSpace/create', { name, storage: { type: 'local', root }, shardStore: null });
        expect(res.body?.code, res.text).toBe('OK');
        return res.body.data.userSpace.userSpaceID as number;
      };
      const [from, to] = [await space('src'), await space('dst')];
      const racerTask = () =>
        racer.post('/v1/spaceSyncer/createTask', {
          trigger: { type: 'Interval', interval: 3600 },
          mode: { type: 'Full' },
          filters: [],
          options: {},
          srcUserSpaceID: from,
          srcPath: 'in',
          destUserSpaceIDs: [to],
          destPathes: ['out'],
        });
      const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 3 === 2 ? racerTask() : trigger(racer, 3600))));
      const made = answers.filter((r) => r.status === 201 || (r.status === 200 && r.body?.code === 'OK'));
      const refused = answers.filter((r) => r.status === 409);
      expect(made.length, `round ${round}:\n${answers.map((r) => `${r.status} ${r.text}`).join('\n')}`).toBe(MOST);
      expect(refused).toHaveLength(30 - MOST);
      for (const r of refused) expect(r.text).toMatch(new RegExp(`the most allowed is ${MOST}`));
      const kept = (await racer.get('/api/jobs/triggers')).body.items as { enabled: boolean }[];
      expect(kept.filter((t) => t.enabled)).toHaveLength(MOST);
    }
  });
});
