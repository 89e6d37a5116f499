#!/usr/bin/env node
// Production entry: runs the compiled CLI (`npm run build` first).
import '../dist/main.js';
