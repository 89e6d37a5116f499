import { spawn, spawnSync } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** A second S3-protocol server: moto's (Python), when `moto_server` is on this machine. Any access key is taken. */
export interface MotoServer {
  endpoint: string;
  stop(): Promise<void>;
}

/** Why moto cannot be started here, or undefined when it can. */
export function motoUnavailableReason(): string | undefined {
  const probe = spawnSync('moto_server', ['--help'], { stdio: 'ignore' });
  return probe.error || probe.status !== 0 ? `moto_server is not installed (${probe.error?.message ?? `exit ${probe.status}`})` : undefined;
}

export async function startMoto(): Promise<MotoServer> {
  const port = await new Promise<number>((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
  const child = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-10_000)));
  const endpoint = `http://127.0.0.1:${port}`;
  for (const deadline = Date.now() + 30_000; ; await sleep(100)) {
    if (child.exitCode !== null) throw new Error(`moto_server exited early: ${stderr}`);
    if (
      await fetch(endpoint).then(
        () => true,
        () => false,
      )
    )
      break;
    if (Date.now() > deadline) throw new Error(`moto_server not listening after 30 s: ${stderr}`);
  }
  return {
    endpoint,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill();
      await exited;
    },
  };
}
