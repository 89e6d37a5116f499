import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { client, login, projectCopy, ROOT, startCommandSetup, startServer, type RunningServer } from '../helpers/server.ts';

/**
 * `npm start` (bin/yunji.js) as users run it: installed without the dev dependencies it has no
 * compiler, and runs the sources through tsx; with them, it compiles once and not again while
 * dist/ is current.
 */
const kinds = await databaseKinds();

/**
 * The entries of node_modules that `npm ci --omit=dev` installs (a scope's folder whole, where it
 * holds a production package): this project's production dependency tree.
 */
function productionPackages(): Set<string> {
  const paths = execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: ROOT, encoding: 'utf8' }).split('\n');
  const top = `${join(ROOT, 'node_modules')}/`;
  return new Set(paths.filter((p) => p.startsWith(top)).map((p) => p.slice(top.length).split('/')[0]!));
}

async function uploadsAndServes(server: RunningServer): Promise<void> {
  const token = await login(server.url);
  const api = client(server.url, token);
  const bucketID = (await api.post('/v1/bucket/create', { name: 'b' })).body.data.bucket.bucketID;
  const packageID = (await api.post('/v1/package/create', { bucketID, name: 'p' })).body.data.package.packageID;
  const form = new FormData();
  form.append('info', JSON.stringify({ packageID }));
  form.append('files', new Blob([Buffer.from('started by npm start')]), 'hello.txt');
  const up = await fetch(`${server.url}/v1/object/upload`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: form });
  expect(up.status, await up.clone().text()).toBe(200);
  const back = await fetch(`${server.url}/v1/object/downloadByPath?path=b/p/hello.txt`, { headers: { authorization: `Bearer ${token}` } });
  expect(await back.text()).toBe('started by npm start');
}

describe('the start script', () => {
  it('runs bin/yunji.js with the Node flags and glibc tunables the tests start servers with', () => {
    const { scripts, config } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    expect(scripts.start).toBe(
      'GLIBC_TUNABLES=${GLIBC_TUNABLES:-$npm_package_config_glibcTunables} node $npm_package_config_nodeFlags bin/yunji.js serve',
    );
    const setup = startCommandSetup();
    expect(setup.nodeFlags.join(' ')).toBe(config.nodeFlags);
    expect(setup.env.GLIBC_TUNABLES).toBe(config.glibcTunables);
  });
});

describe.each(kinds)('npm start without the dev dependencies, on %s', (kind) => {
  let project: string;
  let server: RunningServer;
  beforeAll(async () => {
    const production = productionPackages();
    expect(production.has('typescript')).toBe(false);
    expect(production.has('tsx')).toBe(true);
    project = projectCopy((name) => production.has(name));
    server = await startServer(kind, { projectDir: project, startCommand: true });
  });
  afterAll(async () => {
    await server?.dispose();
    if (project) rmSync(project, { recursive: true, force: true });
  });

  it('runs the sources through tsx, saying so, and serves uploads and downloads', async () => {
    expect(server.output()).toMatch(/running the sources through tsx/);
    expect(existsSync(join(project, 'dist'))).toBe(false);
    await uploadsAndServes(server);
  });
});

describe('npm start with the dev dependencies', () => {
  let project: string;
  afterAll(() => {
    if (project) rmSync(project, { recursive: true, force: true });
  });

  it('compiles when dist/ is missing, then starts the compiled server without compiling again', async () => {
    project = projectCopy(() => true);
    const first = await startServer('sqlite', { projectDir: project, startCommand: true });
    try {
      expect(first.output()).toMatch(/compiling the sources into dist\//);
    } finally {
      await first.dispose();
    }
    const built = statSync(join(project, 'dist', 'main.js')).mtimeMs;
    const second = await startServer('sqlite', { projectDir: project, startCommand: true });
    try {
      expect(second.output()).not.toMatch(/compiling|through tsx/);
      expect(statSync(join(project, 'dist', 'main.js')).mtimeMs).toBe(built);
      await uploadsAndServes(second);
    } finally {
      await second.dispose();
    }
  }, 180_000);
});
