#!/usr/bin/env node
// Production entry: runs the compiled CLI (`npm run build` first).
// File work (syncs copy many files at once) goes through libuv's thread pool, 4 threads by default;
// it is sized before anything uses it. An operator's own setting wins.
process.env.UV_THREADPOOL_SIZE ??= '16';
await import('../dist/main.js');
