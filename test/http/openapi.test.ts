import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/app/config.ts';
import { buildApp } from '../../src/http/app.ts';
import { openRuntime, type Runtime } from '../../src/app/runtime.ts';

// Every route the app registers must appear in /openapi.json with its schemas, so the document can
// never silently fall behind the code.
describe('OpenAPI document', () => {
  let dir: string;
  let runtime: Runtime;
  let app: Awaited<ReturnType<typeof buildApp>>;
  const routes: { method: string; url: string; hidden: boolean }[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'yunji-openapi-'));
    const config = loadConfig({ YUNJI_DATA_DIR: dir }, dir);
    runtime = await openRuntime(config, pino({ level: 'silent' }));
    app = await buildApp(runtime.core);
    await app.ready();
    // printRoutes draws the radix tree: a line's depth is where its '── ' starts; its full path is
    // its ancestors' segments joined.
    const stack: string[] = [];
    for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
      const m = /^(.*?)── (.+?) \(([A-Z, ]+)\)$/.exec(line);
      if (!m) continue;
      const depth = Math.floor(m[1]!.length / 4);
      stack.length = depth;
      stack.push(m[2]!);
      const url = stack.join('');
      // /ws is a WebSocket upgrade, which OpenAPI cannot describe (the README documents it).
      for (const method of m[3]!.split(', ')) routes.push({ method, url, hidden: url === '/openapi.json' || url === '/ws' });
    }
  });
  afterAll(async () => {
    await app?.close();
    await runtime?.database.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists every route with responses, request schemas and parameters', async () => {
    const res = await app.inject({ method: 'GET', url: '/openapi.json' });
    expect(res.statusCode).toBe(200);
    const doc = res.json() as { paths: Record<string, Record<string, any>> };
    const api = routes.filter((r) => !r.hidden && r.method !== 'HEAD' && !r.url.startsWith('/docs'));
    expect(api.length).toBeGreaterThanOrEqual(15);
    for (const r of api) {
      const path = r.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
      const op = doc.paths[path]?.[r.method.toLowerCase()];
      expect(op, `${r.method} ${path} missing from /openapi.json`).toBeDefined();
      expect(Object.keys(op.responses ?? {}).length, `${r.method} ${path} has no responses`).toBeGreaterThan(0);
      for (const [status, response] of Object.entries<any>(op.responses)) {
        if (status === '204') continue;
        expect(response.content?.['application/json']?.schema, `${r.method} ${path} ${status} has no schema`).toBeDefined();
      }
      if (['POST', 'PUT', 'PATCH'].includes(r.method) && !/logout|\/cancel$/.test(path)) {
        // Multipart routes stream their parts (no body schema to validate); they must say so.
        const documented =
          op.requestBody?.content?.['application/json']?.schema ??
          (/multipart\/form-data/.test(op.description ?? '') ? 'multipart' : undefined);
        expect(documented, `${r.method} ${path} has no body schema`).toBeDefined();
      }
      for (const param of path.match(/\{([^}]+)\}/g) ?? []) {
        const name = param.slice(1, -1);
        expect(
          (op.parameters ?? []).some((p: any) => p.in === 'path' && p.name === name),
          `${r.method} ${path} lacks path parameter ${name}`,
        ).toBe(true);
      }
    }
    expect(doc.paths['/api/auth/login']?.post?.requestBody).toBeDefined();
  });

  it('serves the interactive docs at /docs', async () => {
    const res = await app.inject({ method: 'GET', url: '/docs/' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/text\/html/);
  });
});
