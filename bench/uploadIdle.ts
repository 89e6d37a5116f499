import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuSecondsOf, median, round, startYunji } from './lib.ts';
import { curl, curlUpload, setup } from './storage.ts';

/**
 * The server's CPU for one 1 GiB upload and download, on fresh servers that have been idle for
 * a while first (`BENCH_IDLE_SECONDS`, default "0,10"; `BENCH_IDLE_RUNS` servers each, default 4).
 * Without `--initial-old-space-size` (package.json `config.nodeFlags`) a server that had idled
 * ran a full marking per 32–64 MB of upload, which doubled the upload's CPU (docs/BENCHMARKS.md):
 * this shows whether a server still does, and what it costs.
 */
const IDLE = (process.env.BENCH_IDLE_SECONDS ?? '0,10').split(',').map(Number);
const RUNS = Number(process.env.BENCH_IDLE_RUNS ?? 4);
const BIG_MIB = Number(process.env.BENCH_BIG_MIB ?? 1024);

export async function uploadIdleBench(): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'yunji-bench-idle-'));
  try {
    const source = join(dir, 'big.bin');
    const fd = openSync(source, 'w');
    execFileSync('head', ['-c', `${BIG_MIB}M`, '/dev/urandom'], { stdio: ['ignore', fd, 'ignore'] });
    closeSync(fd);
    execFileSync('sync');
    const out: Record<string, unknown> = { mib: BIG_MIB };
    for (const idle of IDLE) {
      const runs: { uploadSeconds: number; uploadServerCpuS: number; downloadServerCpuS: number }[] = [];
      for (let r = 0; r < RUNS; r++) {
        const yunji = await startYunji('', { YUNJI_DATA_DIR: join(dir, `data-${idle}-${r}`) });
        try {
          const { token, packageID } = await setup(yunji);
          const auth = ['--header', `authorization: Bearer ${token}`];
          await new Promise((res) => setTimeout(res, idle * 1000));
          let cpu = cpuSecondsOf(yunji.child.pid);
          const t = performance.now();
          const { objectID } = curlUpload(yunji.url, token, packageID, source);
          const uploadSeconds = (performance.now() - t) / 1000;
          const uploadServerCpuS = cpuSecondsOf(yunji.child.pid) - cpu;
          cpu = cpuSecondsOf(yunji.child.pid);
          curl([...auth, '--output', '/dev/null', `${yunji.url}/v1/object/download?objectID=${objectID}`]);
          runs.push({
            uploadSeconds: round(uploadSeconds),
            uploadServerCpuS: round(uploadServerCpuS),
            downloadServerCpuS: round(cpuSecondsOf(yunji.child.pid) - cpu),
          });
        } finally {
          await yunji.stop();
          rmSync(join(dir, `data-${idle}-${r}`), { recursive: true, force: true });
        }
      }
      out[`idle${idle}s`] = { medianUploadServerCpuS: median(runs.map((x) => x.uploadServerCpuS)), runs };
    }
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
