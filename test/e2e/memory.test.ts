import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { login, startServer, type RunningServer } from '../helpers/server.ts';

const kinds = await databaseKinds();
const glibc =
  process.platform === 'linux' &&
  Boolean((process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime);

const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

describe.each(kinds)('server memory on %s', (kind) => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer(kind, { startCommand: true });
  });
  afterAll(async () => {
    await server?.dispose();
  });

  // scrypt takes 128 MiB per check; a thread that kept it would show at once. Blocks from 4 MiB up
  // are returned to the system because the start command fixes glibc's mmap threshold.
  it.skipIf(!glibc)('gives back what password checks allocate: logins on every thread leave RSS about where it was', async () => {
    await login(server.url);
    const before = rssMiB(server.proc.pid!);
    for (let round = 0; round < 3; round++) await Promise.all(Array.from({ length: 4 }, () => login(server.url)));
    const grown = rssMiB(server.proc.pid!) - before;
    expect(grown).toBeLessThan(24);
  });
});
