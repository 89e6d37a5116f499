import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { accountsBench } from './accounts.ts';
import { jobsBench } from './jobs.ts';
import { ROOT } from './lib.ts';
import { listingBench } from './listing.ts';
import { storageBench } from './storage.ts';
import { syncBench } from './sync.ts';
import { syncMillionBench } from './syncMillion.ts';
import { uploadIdleBench } from './uploadIdle.ts';

/** `npm run bench [-- name…]`: runs the named benchmarks (all by default), prints and saves JSON. */
const benches: Record<string, () => Promise<Record<string, unknown>>> = {
  accounts: accountsBench,
  storage: storageBench,
  listing: listingBench,
  jobs: jobsBench,
  sync: syncBench,
  'sync-million': syncMillionBench,
  'upload-idle': uploadIdleBench,
};

const wanted = process.argv.slice(2);
for (const name of wanted) if (!benches[name]) throw new Error(`unknown benchmark '${name}'; known: ${Object.keys(benches).join(', ')}`);
const dir = join(ROOT, 'bench', 'results');
mkdirSync(dir, { recursive: true });
for (const name of wanted.length > 0 ? wanted : Object.keys(benches)) {
  const started = new Date();
  const result = { benchmark: name, date: started.toISOString(), node: process.version, ...(await benches[name]!()) };
  console.log(JSON.stringify(result, null, 2));
  writeFileSync(join(dir, `${name}-${started.toISOString().replace(/[:.]/g, '-')}.json`), `${JSON.stringify(result, null, 2)}\n`);
}
