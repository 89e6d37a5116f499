#!/usr/bin/env node
// Entry of `npm start` and the `yunji` command. Runs the compiled server (dist/), compiling it first
// when a source is newer; where the TypeScript compiler is not installed (`npm ci --omit=dev`), it
// runs the sources through tsx, a runtime dependency, instead.
import { execFileSync } from 'node:child_process';
import process from 'node:process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const compiled = join(root, 'dist', 'main.js');
const sources = join(root, 'src');

/** The newest modification time of the files under `dir`. */
function newestUnder(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestUnder(path) : statSync(path).mtimeMs);
  }
  return newest;
}

function compiler() {
  try {
    return createRequire(import.meta.url).resolve('typescript/bin/tsc');
  } catch {
    return undefined;
  }
}

const current = existsSync(compiled) && (!existsSync(sources) || statSync(compiled).mtimeMs >= newestUnder(sources));
const tsc = current ? undefined : compiler();
if (current) {
  await import(pathToFileURL(compiled).href);
} else if (tsc) {
  process.stderr.write('yunji: compiling the sources into dist/ (they are newer than the build)\n');
  execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
  await import(pathToFileURL(compiled).href);
} else {
  process.stderr.write('yunji: running the sources through tsx (no current build in dist/, and no TypeScript compiler installed)\n');
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(join(sources, 'main.ts')).href);
}
